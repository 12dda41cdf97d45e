"""The trainer stream: whole GRPO groups from the results topic, exact resume, selection, pacing."""
