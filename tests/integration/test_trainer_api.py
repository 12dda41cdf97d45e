"""The trainer API against a real broker: group sizes from the manifest, the sync stream, runs.

Results are synthetic ``ResultMessage``s published straight to the results topic (helpers of
``test_stream.py``); the manifest comes from the real producer where the test is about it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from stream_helpers import AGENTS, WAIT_S, Env, ids, make_env, publish, rollout

from gymstream.produce.plan import ProduceOptions
from gymstream.produce.producer import produce
from gymstream.trainer.stream import open_stream

pytestmark = pytest.mark.kafka

REPEATS = {"alpha": 3, "_default": 2}  # beta takes the default


@pytest.fixture
async def env(kafka_bootstrap: str) -> Env:
    return await make_env(kafka_bootstrap)


def dataset(path: Path, tasks: int) -> Path:
    lines = [
        {"responses_create_params": {"input": f"task {t}"}, "agent_ref": {"name": agent}}
        for agent in AGENTS
        for t in range(tasks)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def test_per_agent_repeats_group_by_the_manifest(env: Env, tmp_path: Path) -> None:
    tasks = 3
    options = ProduceOptions(
        input_path=dataset(tmp_path / "in.jsonl", tasks),
        run_id=env.run_id,
        known_agents=AGENTS,
        num_repeats=REPEATS,
    )
    report = await produce(env.kafka, env.layout, options)
    assert dict(report.expected) == {"alpha": 3 * tasks, "beta": 2 * tasks}
    sizes = {"alpha": 3, "beta": 2}
    await publish(
        env,
        [
            rollout(env, agent, task, index)
            for agent in AGENTS
            for task in range(tasks)
            for index in range(sizes[agent])
        ],
    )
    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, env.options(group_size=None)) as stream,
    ):
        groups = [g async for g in stream]
        await stream.commit()
    assert sorted(ids(groups)) == sorted((a, t) for a in AGENTS for t in range(tasks))
    for group in groups:
        assert [r.rollout_index for r in group.rollouts] == list(range(sizes[group.agent]))
    assert stream.finished
    assert stream.manifest is not None
    assert stream.manifest.repeats == {"_default": 2, "alpha": 3}
