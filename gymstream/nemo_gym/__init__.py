"""Everything that speaks NeMo Gym: its rows, its output rows and files, its YAML configs and its
HTTP servers (resources servers, remote ``/run`` agents, head server, vllm_model's rules).

``rows/`` reads and validates input rows; ``outputs/`` owns the output row and the files a run
writes; ``config/`` turns NeMo Gym's YAML (or gymstream's own) into typed agents; ``servers/``
talks to NeMo Gym's running servers. Nothing here imports the agent loop (``gymstream.rollout``)
or a stage: the arrow points down, into this room.
"""
