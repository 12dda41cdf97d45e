"""What produce puts in a task: overrides, the per-rollout seed, indices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.pipeline import AGENT_ONE, cli_env, gymstream, single_tool_input
from fixtures.topics import read_all

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


async def test_agent_map_reroutes_rows_and_input_and_bootstrap_server_are_accepted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = cli_env(kafka_bootstrap)
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    data = single_tool_input(tmp_path / "in.jsonl", rows=3)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[0]["agent_ref"] = {"type": "responses_api_agents", "name": "retired_agent"}
    del rows[1]["agent_ref"]  # only _default reaches it
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = gymstream(
        "produce",
        "--input",
        str(data),
        "--agent-map",
        f"retired_agent={AGENT_ONE}",
        "--agent-map",
        f"_default={AGENT_ONE}",
        "--run-id",
        "routed",
        "--bootstrap-server",
        kafka_bootstrap,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    topic = load_layout(None, env["GYMSTREAM_TOPIC_PREFIX"]).tasks(AGENT_ONE)
    tasks = [DECODE_TASK.decode(v) for v in await read_all(kafka_bootstrap, topic)]
    routed = {t.row["id"]: t.row["agent_ref"] for t in tasks if t.run_id == "routed"}
    # NeMo Gym writes a re-routed row's agent_ref as {"name": agent}; an untouched one stays whole
    assert routed == {
        0: {"name": AGENT_ONE},
        1: {"name": AGENT_ONE},
        2: {"name": AGENT_ONE},
    }


def test_agent_name_with_override_agents_routes_every_row(tmp_path: Path) -> None:
    data = single_tool_input(tmp_path / "in.jsonl", rows=1)
    both = gymstream("produce", str(data), "--input", str(data), env=cli_env("127.0.0.1:9"))
    assert both.returncode == 2
    assert "give the dataset once" in both.stderr
    conflict = gymstream(
        "produce",
        str(data),
        "--agent-name",
        "a",
        "--override-agents",
        "--agent-map",
        "_default=b",
        env=cli_env("127.0.0.1:9"),
    )
    assert conflict.returncode == 2
    assert "conflicts with --agent-map _default=b" in conflict.stderr
