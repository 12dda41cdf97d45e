"""NeMo Gym's HTTP servers: pooled client, resources, remote /run agents, head, vllm_model."""
