"""One rollout: the agent loop (model <-> tools, up to max steps, then verify), its environments."""
