"""Adapters to other projects' interfaces: NeMo Gym's ``run_examples``, TRL's ``rollout_func``."""
