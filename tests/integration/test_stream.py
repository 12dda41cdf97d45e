"""The trainer stream against a real broker: whole groups, exact resume, filters, pacing.

Synthetic ``ResultMessage``s are published straight to the results topic by several concurrent
"workers", each in its own shuffled order, so groups interleave across partitions.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

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

from gymstream.errors import ConfigError
from gymstream.runs.pacing import open_pacer
from gymstream.runs.policy import LiveVersions, latest_policy_version, publish_policy_version
from gymstream.runs.tail import read_manifests
from gymstream.trainer.grouping import Group
from gymstream.trainer.stream import open_stream
from gymstream.wire.messages import FailureMessage, ResultMessage

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "online_trainer.py"


@pytest.fixture
async def env(kafka_bootstrap: str) -> Env:
    return await make_env(kafka_bootstrap)


def failed(env: Env, agent: str, task: int, index: int) -> FailureMessage:
    return FailureMessage(
        run_id=env.run_id,
        rollout_id=f"{env.run_id}/{agent}/{task}/{index}",
        agent=agent,
        task_index=task,
        rollout_index=index,
        failure_class="model_unavailable",
        failure_type="ModelCallError",
        message="gave up",
        terminal=True,
    )


async def take_all(env: Env, **changes: object) -> tuple[list[Group], Counter[str]]:
    """Every unit until the stream finishes by itself, committing as it goes."""
    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, env.options(**changes)) as s,
    ):
        out = [g async for g in s]
        await s.commit()
        return out, s.stats.dropped


# --- groups -----------------------------------------------------------------------------------


async def test_groups_are_whole_while_workers_interleave(env: Env) -> None:
    tasks = 10
    messages: list[ResultMessage | FailureMessage] = list(all_rollouts(env, tasks))
    messages.remove(rollout(env, "alpha", 5, 2))
    messages.append(failed(env, "alpha", 5, 2))  # this group can never be whole
    messages += [rollout(env, "beta", 3, 1), rollout(env, "alpha", 0, 0)]  # redone by a worker
    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, env.options(commit="on_next")) as stream,
    ):
        # the stream is open before the run has published anything: it waits
        producing = asyncio.create_task(publish(env, messages))
        got = await stream.next_batch(2 * tasks - 1)
        await producing
        await publish_manifest(env, tasks)
        got += [g async for g in stream]  # nothing more: the run is complete, iteration ends
        assert stream.finished
        stats = stream.stats

    expected = {(a, t) for a in AGENTS for t in range(tasks)} - {("alpha", 5)}
    assert sorted(ids(got)) == sorted(expected)  # each once
    for g in got:
        assert [r.rollout_index for r in g.rollouts] == list(range(SIZE))
        assert g.rewards == [float(i + g.task_index) for i in range(SIZE)]
        assert [row["t"] for row in g.rows()] == [g.task_index] * SIZE
    assert stats.dropped == {"incomplete": 1}
    assert stats.duplicates + stats.closed_skipped == 2
    assert stats.delivered == {"alpha": tasks - 1, "beta": tasks}


async def test_incomplete_groups_can_be_delivered_partially(env: Env) -> None:
    messages: list[ResultMessage | FailureMessage] = list(all_rollouts(env, 2))
    messages.remove(rollout(env, "beta", 1, 0))
    messages.append(failed(env, "beta", 1, 0))
    await publish(env, messages)
    await publish_manifest(env, 2)
    got, dropped = await take_all(env, incomplete="deliver")
    assert not dropped
    partial = [g for g in got if g.failed]
    assert ids(partial) == [("beta", 1)]
    assert partial[0].failed == (0,)
    assert [r.rollout_index for r in partial[0].rollouts] == [1, 2, 3]
    assert len(got) == 2 * len(AGENTS)


async def test_rollout_mode_yields_single_rollouts(env: Env) -> None:
    await publish(env, all_rollouts(env, 3))
    await publish_manifest(env, 3)
    got, _ = await take_all(env, unit="rollout")
    assert len(got) == len(AGENTS) * 3 * SIZE
    assert {g.id for g in got} == {r.rollout_id for r in all_rollouts(env, 3)}
    assert all(len(g.rollouts) == 1 for g in got)


# --- resume -----------------------------------------------------------------------------------


async def take(env: Env, n: int, **changes: object) -> list[Group]:
    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, env.options(**changes)) as s,
    ):
        return await s.next_batch(n)


@pytest.mark.parametrize("commit", ["explicit", "on_next"])
async def test_a_restarted_trainer_neither_loses_nor_repeats_a_group(env: Env, commit: str) -> None:
    tasks = 12
    messages = all_rollouts(env, tasks)
    straggler = rollout(env, "alpha", 0, SIZE - 1)
    messages.remove(straggler)
    await publish(env, messages)  # alpha/0 stays open: it pins its partition's offset
    trained: list[Group] = []

    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, env.options(commit=commit)) as stream,
    ):
        for _ in range(5):
            trained += await stream.next_batch(2)
            if commit == "explicit":
                await stream.commit()
        # on_next: the fifth batch is acknowledged here; these three never are (a crash)
        lost_with_crash = await stream.next_batch(3)
    assert len(trained) == 10

    await publish(env, [straggler, messages[0], messages[-1]], workers=1)  # plus two redone
    await publish_manifest(env, tasks)
    rest, _ = await take_all(env, commit=commit)

    everything = {(a, t) for a in AGENTS for t in range(tasks)}
    assert not set(ids(trained)) & set(ids(rest)), "a committed group came again"
    assert sorted(ids(trained) + ids(rest)) == sorted(everything)
    assert set(ids(lost_with_crash)) <= set(ids(rest)), "an unacknowledged group was lost"

    again, dropped = await take_all(env)  # everything acknowledged: nothing more, and it ends
    assert again == []
    assert not dropped


async def test_resume_from_a_checkpointed_position(env: Env) -> None:
    tasks = 6
    await publish(env, all_rollouts(env, tasks))
    await publish_manifest(env, tasks)
    async with asyncio.timeout(WAIT_S), open_stream(env.kafka, env.layout, env.options()) as s:
        first = await s.next_batch(4)
        checkpoint = await s.commit()  # the trainer keeps this with its weights
        after = await s.next_batch(4)
        await s.commit()  # Kafka's record moves on; the trainer then restores the checkpoint
    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, env.options(), resume_from=checkpoint) as s,
    ):
        replay = [g async for g in s]
    assert set(ids(after)) <= set(ids(replay))
    assert sorted(ids(first) + ids(replay)) == sorted((a, t) for a in AGENTS for t in range(tasks))


async def test_changing_the_group_size_of_a_saved_position_is_refused(env: Env) -> None:
    await publish(env, all_rollouts(env, 1))
    await take(env, 1)
    with pytest.raises(ConfigError, match="group size 4"):
        await take(env, 1, group_size=2)
    with pytest.raises(ConfigError, match=r"rollout index [23], outside a group of size 2"):
        await take(env, 1, group_size=2, from_beginning=True)


# --- filters ------------------------------------------------------------------------------------


async def test_stale_rollouts_are_dropped_or_kept_and_counted(env: Env) -> None:
    tasks = 6
    await publish(env, [r for t in range(tasks) for r in _versioned(env, t, version=t)])
    await publish_manifest(env, tasks)
    got, dropped = await take_all(env, policy_version=5, max_staleness=2)
    assert sorted({g.task_index for g in got}) == [3, 4, 5]  # 5 - version <= 2
    assert dropped == {"stale": 2 * 3}

    async with (
        asyncio.timeout(WAIT_S),
        open_stream(
            env.kafka,
            env.layout,
            env.options(consumer="keeper", policy_version=5, max_staleness=2, on_stale="keep"),
        ) as s,
    ):
        kept = [g async for g in s]
        histogram = s.stats.staleness
    assert len(kept) == 2 * tasks
    assert histogram == {5 - t: 2 * SIZE for t in range(tasks)}


def _versioned(env: Env, task: int, version: int) -> list[ResultMessage]:
    return [rollout(env, a, task, i, version=version) for a in AGENTS for i in range(SIZE)]


async def test_staleness_follows_the_trainer_version(env: Env) -> None:
    tasks = 4
    await publish(env, [r for t in range(tasks) for r in _versioned(env, t, version=0)])
    await publish_manifest(env, tasks)
    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, env.options(policy_version=0, max_staleness=1)) as s,
    ):
        first = await s.next_batch(2)
        s.set_policy_version(2)  # everything still waiting is now two versions behind
        rest = [g async for g in s]
        dropped = s.stats.dropped
    assert len(first) == 2
    assert rest == []
    assert dropped == {"stale": 2 * tasks - 2}


async def test_zero_variance_groups_are_dropped_and_counted(env: Env) -> None:
    tasks = 8
    flat = {3, 4, 7}
    await publish(
        env,
        [
            rollout(env, a, t, i, reward=1.0 if t in flat else float(i))
            for a in AGENTS
            for t in range(tasks)
            for i in range(SIZE)
        ],
    )
    await publish_manifest(env, tasks)
    got, dropped = await take_all(env, drop_zero_variance=True)
    assert sorted(ids(got)) == sorted((a, t) for a in AGENTS for t in range(tasks) if t not in flat)
    assert dropped == {"zero_variance": len(AGENTS) * len(flat)}


async def test_mixing_weights_shape_what_the_trainer_gets(env: Env) -> None:
    tasks = 12
    await publish(env, all_rollouts(env, tasks))
    await publish_manifest(env, tasks)
    async with (
        asyncio.timeout(WAIT_S),
        open_stream(env.kafka, env.layout, env.options(weights={"alpha": 3, "beta": 1})) as s,
    ):
        first = await s.next_batch(8)
        mix = s.stats.mix()
        rest = [g async for g in s]
    assert Counter(g.agent for g in first) == {"alpha": 6, "beta": 2}
    assert mix == {"alpha": 0.75, "beta": 0.25}
    assert len(first) + len(rest) == len(AGENTS) * tasks  # then what is left, all of it


async def test_unweighted_agents_are_dropped(env: Env) -> None:
    await publish(env, all_rollouts(env, 3))
    await publish_manifest(env, 3)
    got, dropped = await take_all(env, weights={"alpha": 1})
    assert {g.agent for g in got} == {"alpha"}
    assert dropped == {"unweighted": 3}


# --- policy versions and pacing -----------------------------------------------------------------


async def test_policy_versions_reach_workers(env: Env) -> None:
    assert await latest_policy_version(env.kafka, env.layout, env.run_id) is None
    async with asyncio.timeout(WAIT_S), LiveVersions(env.kafka, env.layout) as live:
        assert live.get(env.run_id) is None
        await publish_policy_version(env.kafka, env.layout, env.run_id, 3)
        assert await live.wait_for(env.run_id, 3) == 3
        async with open_stream(env.kafka, env.layout, env.options()) as s:
            await s.publish_policy_version(4)
        assert await live.wait_for(env.run_id, 4) == 4
    assert await latest_policy_version(env.kafka, env.layout, env.run_id) == 4


async def test_pacer_holds_the_producer_to_the_trainer(env: Env) -> None:
    tasks = 6
    await publish(env, all_rollouts(env, tasks))
    produced = 2 * tasks
    async with (
        asyncio.timeout(WAIT_S),
        open_pacer(env.kafka, env.layout, env.run_id, max_ahead=8) as pacer,
    ):
        assert pacer.consumed == 0
        assert not pacer.has_room(produced)
        room = asyncio.create_task(pacer.wait_for_room(produced))
        async with open_stream(env.kafka, env.layout, env.options()) as s:
            await s.next_batch(3)
            await s.commit()
            assert await pacer.wait_for_room(10, timeout_s=10) == 3  # 10 - 3 < 8
            assert not room.done()  # 12 - 3 >= 8
            await s.next_batch(2)
            await s.commit()
        assert await asyncio.wait_for(room, 10) == 5


# --- CLI --------------------------------------------------------------------------------------


def run_cli(env: Env, *args: str) -> list[Any]:
    """Run ``gymstream stream`` to its end."""
    done = run_to_end(
        [
            sys.executable,
            "-m",
            "gymstream.cli.main",
            "stream",
            "--run-id",
            env.run_id,
            "--bootstrap",
            env.kafka.bootstrap,
            "--topic-prefix",
            env.layout.prefix,
            *args,
        ],
        text=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"printed" in done.stderr  # the summary
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture
async def published(env: Env) -> Env:
    await publish(env, all_rollouts(env, 3))
    await publish_manifest(env, 3)
    return env


def test_cli_prints_groups_and_resumes(published: Env) -> None:
    env = published
    head = run_cli(env, "--groups", "--group-size", str(SIZE), "--max", "2")
    assert len(head) == 2
    for line in head:
        assert set(line) >= {"rollouts", "run_id", "agent", "task_index", "rewards"}
        assert [r["i"] for r in line["rollouts"]] == list(range(SIZE))
    rest = run_cli(env, "--groups", "--group-size", str(SIZE))
    seen = [(g["agent"], g["task_index"]) for g in head + rest]
    assert sorted(seen) == sorted((a, t) for a in AGENTS for t in range(3))
    rows = run_cli(env, "--consumer", "dump")
    assert len(rows) == len(AGENTS) * 3 * SIZE
    assert {(r["agent_ref"]["name"], r["t"], r["i"]) for r in rows} == {
        (a, t, i) for a in AGENTS for t in range(3) for i in range(SIZE)
    }


# --- the example trainer ------------------------------------------------------------------------


async def test_online_trainer_example_trains_every_group_once(env: Env) -> None:
    tasks = 3
    await publish(env, all_rollouts(env, tasks))
    await publish_manifest(env, tasks)
    assert [m.run_id for m in await read_manifests(env.kafka, env.layout)] == [env.run_id]
    args = [
        sys.executable,
        str(EXAMPLE),
        "--run-id",
        env.run_id,
        "--group-size",
        str(SIZE),
        "--bootstrap",
        env.kafka.bootstrap,
        "--topic-prefix",
        env.layout.prefix,
    ]
    first = await asyncio.to_thread(partial(run_to_end, args))
    assert first.returncode == 0, first.stderr
    out = first.stdout
    steps = [line for line in out.splitlines() if line.startswith("step")]
    assert len(steps) == len(AGENTS) * tasks // 2  # two groups per step
    assert "advantages [-1.34, -0.45, +0.45, +1.34]" in out  # rewards t, t+1, t+2, t+3
    assert "\n        0  " in out  # staleness histogram: every rollout fresh (version 0)
    assert await latest_policy_version(env.kafka, env.layout, env.run_id) == len(steps)
    again = await asyncio.to_thread(partial(run_to_end, args))
    assert again.returncode == 0, again.stderr
    assert "step" not in again.stdout  # it resumes after the last trained batch
