"""The one reader of the compacted runs topic: manifests, policy versions, progress, pacing."""
