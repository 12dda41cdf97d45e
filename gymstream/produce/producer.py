"""Dataset rows -> per-agent task topics: the Kafka loop of ``gymstream produce``.

Streams the input in constant memory (rows are read, expanded and sent in bounded windows).
What to publish (valid rows, rollouts, rejects, counts) is decided in ``plan.py``, without Kafka;
this module publishes it with acks=all and idempotence, every send awaited in windows. Task
messages go round-robin over the agent topic's partitions (even spread, whatever the keys); the
key is the rollout id.

The run manifest on the runs topic brackets the work: ``producing`` first, then ``produced`` with
the expected rollouts per agent once every task is acknowledged, so a sink knows when it is done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Literal

from aiokafka.errors import MessageSizeTooLargeError

from gymstream.errors import ConfigError, RowError
from gymstream.kafka.clients import build_producer
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.outputs.resume import RetryTask
from gymstream.nemo_gym.rows.rollouts import DEFAULT_REPEATS_KEY
from gymstream.produce.limits import topic_max_message_bytes
from gymstream.produce.plan import (
    JsonlFile,
    ProduceOptions,
    ProduceReport,
    RoundRobin,
    check_paths,
    plan_rollouts,
    record_reject,
    task_message,
    unsendable_task,
    valid_rows,
)
from gymstream.runs.pacing import open_pacer
from gymstream.settings import KafkaSettings
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import manifest_key
from gymstream.wire.messages import TaskMessage
from gymstream.wire.records import RunManifest

__all__ = [
    "ProduceOptions",
    "ProduceReport",
    "produce",
    "produce_paced",
    "publish_manifest",
    "republish",
]

_WINDOW = 4096  # sends in flight before we wait for their acks: bounds memory, keeps batches full


async def publish_manifest(producer: Any, layout: TopicLayout, manifest: RunManifest) -> None:
    """Write the run's manifest (latest state wins: the runs topic is compacted)."""
    await (
        await producer.send(
            layout.runs, ENCODER.encode(manifest), key=manifest_key(manifest.run_id)
        )
    )


async def produce(
    kafka: KafkaSettings,
    layout: TopicLayout,
    options: ProduceOptions,
    *,
    on_reject: Callable[[RowError], None] | None = None,
    on_published: Callable[[int], None] | None = None,
    on_agent: Callable[[str], Any] | None = None,
    report: ProduceReport | None = None,
) -> ProduceReport:
    """Publish every valid rollout of the input; report bad rows through ``on_reject``.

    Raises nothing for bad rows (they are counted and written to ``rejects_path``) unless
    ``fail_fast`` is set, in which case production stops at the first one and the report says
    where (``stopped_at``); the manifest is then left in state ``producing``.
    ``on_agent(agent)`` (may be async) is called before the first task of each agent is sent,
    so that ``collect`` can start that agent's workers.
    ``report``: the (new) report to fill, which the caller may read while this runs (live
    progress: rows read, rollouts sent); a new one by default.
    """
    check_paths(options)
    report = report or ProduceReport(run_id=options.run_id)
    started = time.perf_counter()
    producer = build_producer(kafka)
    rejects = JsonlFile(options.rejects_path, lazy=True)
    materialized: JsonlFile | None = None
    try:
        await producer.start()  # inside the try: a failed start still closes the client
        now_ms = int(time.time() * 1000)
        await publish_manifest(
            producer, layout, _manifest(options, "producing", now_ms, namespace=layout.namespace)
        )
        materialized = JsonlFile(options.materialized_path)
        window = _Window(on_published)
        partitions = RoundRobin()
        max_bytes: dict[str, int] = {}  # per topic: the largest task value it takes
        unsendable_line = 0  # the last line rejected as too large (its repeats are skipped)
        groups_started = 0
        rows = valid_rows(options, report, rejects, on_reject)
        for planned in plan_rollouts(rows, options, report):
            if planned.line == unsendable_line:
                continue
            if options.pacer is not None and planned.starts_group:
                # back-pressure: a new group waits until the trainer is close enough behind
                if not options.pacer.has_room(groups_started):
                    await window.flush()  # what is sent is visible while we wait
                await options.pacer.wait_for_room(groups_started)
                groups_started += 1
            topic = layout.tasks(planned.agent)
            if topic not in partitions:
                if on_agent is not None:
                    await _maybe_await(on_agent(planned.agent))
                partitions.add(topic, await _partitions_of(producer, topic))
                max_bytes[topic] = await topic_max_message_bytes(
                    kafka, topic, client_limit=producer._max_request_size
                )
            task = task_message(planned, options, created_ms=int(time.time() * 1000))
            size: int | None = None
            try:
                value = ENCODER.encode(task)
                size = len(value)
                if size > max_bytes[topic]:
                    raise MessageSizeTooLargeError(f"{size} bytes")
                ack = await producer.send(
                    topic,
                    value,
                    key=planned.rollout_id.encode("utf-8"),
                    partition=partitions.next(topic),
                )
            except (MessageSizeTooLargeError, RecursionError):
                # bad input, found where the limit is known: reject the row (once), go on
                unsendable_line = planned.line
                report.rows -= 1
                item = unsendable_task(planned, options, size, max_bytes[topic], topic)
                if record_reject(item, options, report, rejects, on_reject):
                    break
                continue
            materialized.write(planned.materialized())
            window.add(ack)
            report.published[planned.agent] += 1
            if len(window) >= _WINDOW:
                await window.flush()
        await window.flush()
        if report.stopped_at is None:
            manifest = _manifest(
                options, "produced", now_ms, expected=report.expected, namespace=layout.namespace
            )
            await publish_manifest(producer, layout, manifest)
    finally:
        rejects.close()
        if materialized is not None:
            materialized.close()
        await producer.stop()
    report.elapsed_s = time.perf_counter() - started
    return report


def _manifest(
    options: ProduceOptions,
    state: Literal["producing", "produced"],
    created_ms: int,
    *,
    expected: dict[str, int] | None = None,
    namespace: str,
) -> RunManifest:
    return RunManifest(
        run_id=options.run_id,
        state=state,
        expected=expected or {},
        input_path=str(options.input_path),
        created_ms=created_ms,
        repeats=_manifest_repeats(options.num_repeats),
        definition=dict(options.definition),
        namespace=namespace,
    )


def _manifest_repeats(num_repeats: int | Mapping[str, int]) -> dict[str, int]:
    """The repeats a manifest records (a trainer stream's group sizes): per agent + default."""
    if isinstance(num_repeats, int):
        return {DEFAULT_REPEATS_KEY: num_repeats}
    return {DEFAULT_REPEATS_KEY: 1, **num_repeats}  # nemo.rollouts.expand's default


async def _partitions_of(producer: Any, topic: str) -> set[int]:
    found: set[int] | None = await producer.partitions_for(topic)
    if not found:
        raise ConfigError(f"topic {topic} does not exist; run `gymstream topics apply` first")
    return found


class _Window:
    """Sends in flight: ``flush`` awaits every ack, then tells ``on_published`` how many."""

    def __init__(self, on_published: Callable[[int], None] | None) -> None:
        self._pending: list[asyncio.Future[Any]] = []
        self._on_published = on_published

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ack: asyncio.Future[Any]) -> None:
        self._pending.append(ack)

    async def flush(self) -> None:
        if not self._pending:
            return
        await asyncio.gather(*self._pending)
        if self._on_published is not None:
            self._on_published(len(self._pending))
        self._pending.clear()


async def produce_paced(
    kafka: KafkaSettings,
    layout: TopicLayout,
    options: ProduceOptions,
    *,
    max_groups_ahead: int | None,
    pace_consumer: str = "trainer",
    **callbacks: Any,
) -> ProduceReport:
    """``produce``, kept at most ``max_groups_ahead`` groups ahead of the trainer stream named
    ``pace_consumer`` (its committed progress on the runs topic); unpaced when None."""
    if max_groups_ahead is None:
        return await produce(kafka, layout, options, **callbacks)
    async with open_pacer(
        kafka, layout, options.run_id, max_ahead=max_groups_ahead, consumer=pace_consumer
    ) as pacer:
        return await produce(kafka, layout, dataclasses.replace(options, pacer=pacer), **callbacks)


async def republish(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, tasks: Mapping[str, RetryTask]
) -> Counter[str]:
    """Publish failed rollouts again (``retry-failures``), each with its next attempt number."""
    producer = build_producer(kafka)
    counts: Counter[str] = Counter()
    try:
        await producer.start()
        pending = []
        for rid, item in tasks.items():
            message = TaskMessage(
                run_id=run_id,
                rollout_id=rid,
                agent=item.agent,
                task_index=item.task_index,
                rollout_index=item.rollout_index,
                row=item.row,
                attempt=item.attempt,
                created_ms=int(time.time() * 1000),
            )
            pending.append(
                await producer.send(
                    layout.tasks(item.agent), ENCODER.encode(message), key=rid.encode("utf-8")
                )
            )
            counts[item.agent] += 1
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return counts


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value
