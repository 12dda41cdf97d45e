"""The trainer API against a real broker: group sizes from the manifest, the sync stream, runs.

Results are synthetic ``ResultMessage``s published straight to the results topic (helpers of
``test_stream.py``); the manifest comes from the real producer where the test is about it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fixtures.stream import (
    AGENTS,
    SIZE,
    WAIT_S,
    Env,
    all_rollouts,
    ids,
    make_env,
    publish,
    publish_manifest,
    rollout,
)
from fixtures.waits import run_to_end

from gymstream.produce.plan import ProduceOptions
from gymstream.produce.producer import produce
from gymstream.trainer.grouping import Group
from gymstream.trainer.stream import open_stream
from gymstream.trainer.sync import SyncStream
from gymstream.wire.codec import ENCODER

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


# --- several runs in one stream -----------------------------------------------------------------


async def test_two_runs_stream_as_one_with_exact_resume_per_run(env: Env) -> None:
    epochs = [dataclasses.replace(env, run_id=f"{env.run_id}-e{n}") for n in range(2)]
    tasks = 3
    for epoch in epochs:
        await publish(env, all_rollouts(epoch, tasks))
        await publish_manifest(env, tasks, run_id=epoch.run_id)
    expected = sorted((e.run_id, a, t) for e in epochs for a in AGENTS for t in range(tasks))

    def keys(groups: list[Group]) -> list[tuple[str, str, int]]:
        return [(g.run_id, g.agent, g.task_index) for g in groups]

    options = env.options(run_id="", run_ids=[e.run_id for e in epochs])
    async with asyncio.timeout(WAIT_S), open_stream(env.kafka, env.layout, options) as stream:
        first = await stream.next_batch(4)
        checkpoint = await stream.commit()
        handed_not_committed = await stream.next_batch(5)  # spans both runs: then a "crash"
    assert [p.run_id for p in checkpoint] == [e.run_id for e in epochs]
    assert {g.run_id for g in handed_not_committed} == {e.run_id for e in epochs}

    by_prefix = env.options(run_id="", run_prefix=f"{env.run_id}-e")
    async with asyncio.timeout(WAIT_S), open_stream(env.kafka, env.layout, by_prefix) as stream:
        assert stream.run_ids == [e.run_id for e in epochs]
        rest = [g async for g in stream]
        await stream.commit()
        assert stream.finished
    assert not set(keys(first)) & set(keys(rest)), "a committed group came again"
    assert set(keys(handed_not_committed)) <= set(keys(rest)), "an unacknowledged group was lost"
    assert sorted(keys(first) + keys(rest)) == expected

    async with asyncio.timeout(WAIT_S), open_stream(env.kafka, env.layout, options) as stream:
        assert [g async for g in stream] == []  # every run's record says it is done

    # a trainer's own checkpoint takes each run back to where it was
    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, options, resume_from=checkpoint) as stream,
    ):
        replay = [g async for g in stream]
    assert sorted(keys(first) + keys(replay)) == expected


# --- the synchronous stream ---------------------------------------------------------------------


def test_the_sync_stream_resumes_exactly(kafka_bootstrap: str) -> None:
    """A plain ``for batch in stream:`` loop (no event loop of its own) that crashes mid-run."""
    env = asyncio.run(make_env(kafka_bootstrap))
    tasks = 6
    asyncio.run(publish(env, all_rollouts(env, tasks)))
    asyncio.run(publish_manifest(env, tasks))
    everything = sorted((a, t) for a in AGENTS for t in range(tasks))

    trained: list[Group] = []
    with SyncStream(env.kafka, env.layout, env.options(), batch_size=3) as stream:
        for step, batch in enumerate(stream):
            assert all(len(g.rollouts) == SIZE for g in batch)  # whole groups only
            trained += batch
            stream.publish_policy_version(step + 1)
            stream.commit()
            if step == 1:
                break
        lost_with_crash = stream.next_batch(2)  # handed, never committed
    assert len(trained) == 6

    with SyncStream(env.kafka, env.layout, env.options(), batch_size=4) as stream:
        assert stream.policy_version == 2  # restored from the saved position
        rest = [g for batch in stream for g in batch]
        stream.commit()
        assert stream.finished
    assert not set(ids(trained)) & set(ids(rest)), "a committed group came again"
    assert set(ids(lost_with_crash)) <= set(ids(rest)), "an unacknowledged group was lost"
    assert sorted(ids(trained) + ids(rest)) == everything

    with SyncStream(env.kafka, env.layout, env.options()) as stream:
        assert list(stream) == []


# --- the example trainer on token sequences ----------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "online_trainer.py"


def token_row(agent: str, task: int, index: int) -> dict[str, Any]:
    """A two-turn row with token ids: prompt 3, generation 2, tool tokens 3, generation 1+index."""
    first = [1, 2, 3]
    second = [*first, 10, 11, 20, 21, 22]
    generation = [30 + i for i in range(1 + index)]
    return {
        "response": {
            "output": [
                dict(zip(FIELDS, [first, [10, 11], [-0.5, -0.5]], strict=True)),
                {"type": "function_call_output", "output": "{}"},
                dict(zip(FIELDS, [second, generation, [-1.0] * len(generation)], strict=True)),
            ]
        },
        "agent_ref": {"name": agent},
        "_ng_task_index": task,
        "_ng_rollout_index": index,
    }


FIELDS = ("prompt_token_ids", "generation_token_ids", "generation_log_probs")


async def test_the_example_trains_on_token_sequences_through_the_sync_stream(env: Env) -> None:
    tasks = 1
    rollouts = [
        msgspec.structs.replace(
            rollout(env, agent, 0, index),
            output=msgspec.Raw(ENCODER.encode(token_row(agent, 0, index))),
        )
        for agent in AGENTS
        for index in range(SIZE)
    ]
    await publish(env, rollouts)
    await publish_manifest(env, tasks)
    args = [sys.executable, str(EXAMPLE), "--run-id", env.run_id, "--group-size", str(SIZE)]
    args += ["--bootstrap", env.kafka.bootstrap, "--topic-prefix", env.layout.prefix]
    done = await asyncio.to_thread(partial(run_to_end, args))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    sequences = [line.strip() for line in out.splitlines() if " tokens, " in line]
    assert len(sequences) == len(AGENTS) * SIZE
    for index in range(SIZE):  # 3 prompt + 2 generated + 3 tool + (1 + index) generated
        line = f"{9 + index} tokens, {3 + index} generated in 2 turns, sampled by policy v[0, 0]"
        assert sequences.count(line) == len(AGENTS)
    assert "carry no token ids" not in out


# --- gymstream stream ---------------------------------------------------------------------------


def stream_cli(env: Env, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "gymstream.cli.main", "stream", *args]
    command += ["--bootstrap", env.kafka.bootstrap, "--topic-prefix", env.layout.prefix]
    return run_to_end(command, text=False)


async def test_the_cli_streams_runs_by_prefix_or_list_with_sizes_from_the_manifests(
    env: Env,
) -> None:
    epochs = [dataclasses.replace(env, run_id=f"{env.run_id}-e{n}") for n in range(2)]
    for epoch in epochs:
        await publish(env, all_rollouts(epoch, 2))
        await publish_manifest(env, 2, run_id=epoch.run_id, repeats={"_default": SIZE})
    expected = sorted((e.run_id, a, t) for e in epochs for a in AGENTS for t in range(2))

    def groups_of(done: subprocess.CompletedProcess[bytes]) -> list[tuple[str, str, int]]:
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert all(len(line["rollouts"]) == SIZE for line in lines)
        return sorted((line["run_id"], line["agent"], line["task_index"]) for line in lines)

    by_prefix = await asyncio.to_thread(
        stream_cli, env, "--run-prefix", f"{env.run_id}-e", "--groups"
    )
    assert groups_of(by_prefix) == expected
    runs = [arg for e in epochs for arg in ("--run-id", e.run_id)]
    listed = await asyncio.to_thread(stream_cli, env, *runs, "--groups", "--consumer", "other")
    assert groups_of(listed) == expected
    both = await asyncio.to_thread(stream_cli, env, *runs, "--run-prefix", "x")
    assert both.returncode == 2
    assert b"--run-id (once or more) or --run-prefix, not both" in both.stderr
