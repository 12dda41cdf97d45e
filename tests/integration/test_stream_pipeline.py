"""The trainer stream fed by the real pipeline: two worker processes for one agent."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.model import ModelFactory
from fixtures.pipeline import (
    AGENT_ONE,
    cli_env,
    gymstream,
    last_assignment,
    single_tool_input,
    start_worker,
    stop_gracefully,
    wait_until,
)

from gymstream.kafka.topics import load_layout
from gymstream.settings import KafkaSettings
from gymstream.trainer.grouping import Group
from gymstream.trainer.stream import StreamOptions, open_stream

pytestmark = pytest.mark.kafka
ROWS, SIZE = 30, 4


@pytest.fixture
def model_url(make_scripted_model: ModelFactory) -> str:
    return make_scripted_model(latency_ms=5).url


async def test_groups_whole_with_two_workers_per_agent(
    kafka_bootstrap: str, model_url: str, tmp_path: Path
) -> None:
    env = cli_env(kafka_bootstrap, model_url)
    prefix = env["GYMSTREAM_TOPIC_PREFIX"]
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [start_worker(AGENT_ONE, env, log, "--concurrency", "8") for log in logs]
    try:
        wait_until(
            lambda: all(last_assignment(log) > 0 for log in logs), 60, "both workers assigned"
        )
        data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
        produced = gymstream(
            "produce", str(data), "--num-repeats", str(SIZE), "--run-id", "sp", env=env
        )
        assert produced.returncode == 0, produced.stderr
        kafka = KafkaSettings(bootstrap=kafka_bootstrap)
        options = StreamOptions(run_id="sp", group_size=SIZE, poll_ms=50)
        got: list[Group] = []
        async with open_stream(kafka, load_layout(prefix=prefix), options) as stream:
            while len(got) < ROWS:
                batch = await stream.next_batch(5, timeout_s=60)
                assert batch, "the stream ran dry before every group arrived"
                got.extend(batch)
                await stream.commit()
    finally:
        codes = [stop_gracefully(w) for w in workers]
    assert codes == [0, 0]
    taken = [
        int(
            next(x for x in log.read_text().splitlines() if " taken," in x)
            .split(":")[1]
            .split("taken")[0]
        )
        for log in logs
    ]
    assert all(t > 0 for t in taken), taken  # both processes served the agent
    assert sorted(g.task_index for g in got) == list(range(ROWS))  # every group, once
    for group in got:
        assert group.agent == AGENT_ONE
        assert sorted(r.rollout_index for r in group.rollouts) == list(range(SIZE))  # whole
        assert group.rewards == [1.0] * SIZE
