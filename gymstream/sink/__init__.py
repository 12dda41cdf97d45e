"""The sink stage: results and failures -> NeMo Gym's JSONL files, effectively once."""
