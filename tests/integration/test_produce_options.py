"""What produce puts in a task: overrides, the per-rollout seed, indices."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_helpers import read_all
from pipeline_helpers import AGENT_ONE, cli_env, gymstream, single_tool_input

from gymstream.kafka.topics import load_layout
from gymstream.wire.codec import DECODE_TASK

pytestmark = pytest.mark.kafka


async def test_overrides_and_rollout_seed_reach_the_task(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = cli_env(kafka_bootstrap)
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    data = single_tool_input(tmp_path / "in.jsonl", rows=2)
    result = gymstream(
        "produce",
        str(data),
        "--num-repeats",
        "3",
        "--rollout-seed",
        "100",
        "--responses-create-params",
        "temperature=0.6",
        "--run-id",
        "seeded",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    topic = load_layout(None, env["GYMSTREAM_TOPIC_PREFIX"]).tasks(AGENT_ONE)
    tasks = [DECODE_TASK.decode(v) for v in await read_all(kafka_bootstrap, topic)]
    got = sorted(
        (
            t.task_index,
            t.rollout_index,
            t.row["responses_create_params"]["seed"],
            t.row["responses_create_params"]["temperature"],
        )
        for t in tasks
    )
    assert got == [(t, r, 100 + r, 0.6) for t in range(2) for r in range(3)]
    assert all(
        t.rollout_id == f"seeded/{AGENT_ONE}/{t.task_index}/{t.rollout_index}" for t in tasks
    )
