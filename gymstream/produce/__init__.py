"""The produce stage: dataset rows -> one task per rollout on its agent's topic; the manifest."""
