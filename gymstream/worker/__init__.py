"""The worker stage: an agent's tasks -> rollouts -> results or typed failures; commits."""
