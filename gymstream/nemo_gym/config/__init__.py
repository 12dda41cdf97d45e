"""Configuration: agents and model endpoints (gymstream YAML or NeMo Gym's own, translated)."""
