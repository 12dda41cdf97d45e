"""Trainer-stream test helpers: fresh topics per test, synthetic results, published like workers."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from gymstream.kafka.clients import build_producer
from gymstream.kafka.topics import TopicLayout, apply_topics, load_layout
from gymstream.settings import KafkaSettings
from gymstream.trainer.grouping import Group
from gymstream.trainer.stream import StreamOptions
from gymstream.wire.codec import ENCODER
from gymstream.wire.messages import FailureMessage, ResultMessage
from gymstream.wire.records import RunManifest

AGENTS = ("alpha", "beta")
SIZE = 4
WAIT_S = 30.0


@dataclass(frozen=True)
class Env:
    kafka: KafkaSettings
    layout: TopicLayout
    run_id: str

    def options(self, **changes: object) -> StreamOptions:
        return StreamOptions.model_validate(
            {"run_id": self.run_id, "group_size": SIZE, "poll_ms": 50, **changes}
        )


async def make_env(kafka_bootstrap: str) -> Env:
    """Fresh topics (a unique prefix) and a fresh run id on the test broker."""
    prefix = f"s{uuid.uuid4().hex[:10]}"
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    layout = load_layout(prefix=prefix)
    await apply_topics(kafka.client_options(), layout, AGENTS)
    return Env(kafka, layout, f"run-{uuid.uuid4().hex[:8]}")


def rollout(
    env: Env, agent: str, task: int, index: int, *, reward: float | None = None, version: int = 0
) -> ResultMessage:
    return ResultMessage(
        run_id=env.run_id,
        rollout_id=f"{env.run_id}/{agent}/{task}/{index}",
        agent=agent,
        task_index=task,
        rollout_index=index,
        output=msgspec.Raw(ENCODER.encode({"agent_ref": {"name": agent}, "t": task, "i": index})),
        reward=float(index + task) if reward is None else reward,
        policy_version=version,
    )


def all_rollouts(env: Env, tasks: int, **kwargs: object) -> list[ResultMessage]:
    return [
        rollout(env, a, t, i, **kwargs)  # type: ignore[arg-type]
        for a in AGENTS
        for t in range(tasks)
        for i in range(SIZE)
    ]


async def publish(
    env: Env, messages: Iterable[ResultMessage | FailureMessage], workers: int = 3, seed: int = 1
) -> None:
    """Publish like ``workers`` concurrent workers, each in its own shuffled order."""
    items = list(messages)
    random.Random(seed).shuffle(items)
    producer = build_producer(env.kafka)
    await producer.start()
    try:

        async def worker(share: list[ResultMessage | FailureMessage]) -> None:
            for m in share:
                topic = env.layout.results if isinstance(m, ResultMessage) else env.layout.failures
                key = f"{m.run_id}/{m.agent}/{m.task_index}".encode()
                await producer.send_and_wait(topic, ENCODER.encode(m), key=key)

        await asyncio.gather(*(worker(items[w::workers]) for w in range(workers)))
    finally:
        await producer.stop()


async def publish_manifest(
    env: Env, tasks: int, run_id: str | None = None, *, repeats: dict[str, int] | None = None
) -> None:
    """The run's manifest, produced: ``tasks`` groups of ``SIZE`` per agent."""
    manifest = RunManifest(
        run_id=run_id or env.run_id,
        state="produced",
        expected=dict.fromkeys(AGENTS, tasks * SIZE),
        repeats=repeats or {},
    )
    producer = build_producer(env.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(
            env.layout.runs, ENCODER.encode(manifest), key=manifest.run_id.encode()
        )
    finally:
        await producer.stop()


def ids(groups: Iterable[Group]) -> list[tuple[str, int]]:
    return [(g.agent, g.task_index) for g in groups]
