"""Dataset rows -> per-agent task topics: the engine of ``gymstream produce``.

Streams the input in constant memory (rows are read, expanded and sent in bounded windows),
validates every row, assigns ``_ng_task_index`` / ``_ng_rollout_index`` and a rollout id unique
in the run, and publishes with acks=all and idempotence. Task messages go round-robin over the
agent topic's partitions (even spread, whatever the keys); the key is the rollout id.

The run manifest on the runs topic brackets the work: ``producing`` first, then ``produced`` with
the expected rollouts per agent once every task is acknowledged, so a sink knows when it is done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gymstream.errors import RowError
from gymstream.kafka.clients import build_producer
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo.output_row import materialized_row
from gymstream.nemo.resume import RetryTask
from gymstream.nemo.rows import InputRow, apply_overrides, expand, read_rows
from gymstream.runs.control import Pacer, open_pacer
from gymstream.settings import KafkaSettings
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import manifest_key, rollout_id
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


@dataclass(frozen=True)
class ProduceOptions:
    """What to publish; mirrors the CLI options of ``gymstream produce``."""

    input_path: Path
    run_id: str
    known_agents: Collection[str]
    default_agent: str | None = None
    num_repeats: int | Mapping[str, int] = 1
    limit: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    fail_fast: bool = False
    rejects_path: Path | None = None
    materialized_path: Path | None = None
    skip_rollouts: Collection[str] = frozenset()
    attempts: Mapping[str, int] = field(default_factory=dict)
    policy_version: int | None = None
    pacer: Pacer | None = None  # pacing: at most pacer.max_ahead groups ahead of the trainer
    # NeMo Gym's optional per-rollout seed: responses_create_params.seed = base + rollout index
    rollout_seed: int | None = None


@dataclass
class ProduceReport:
    """Counts of one produce run; ``expected`` is what the sink must account for."""

    run_id: str
    published: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    rows: int = 0
    elapsed_s: float = 0.0
    stopped_at: RowError | None = None

    @property
    def expected(self) -> dict[str, int]:
        agents = set(self.published) | set(self.skipped)
        return {a: self.published[a] + self.skipped[a] for a in sorted(agents)}


async def publish_manifest(producer: Any, layout: TopicLayout, manifest: RunManifest) -> None:
    """Write the run's manifest (latest state wins: the runs topic is compacted)."""
    await (
        await producer.send(
            layout.runs, ENCODER.encode(manifest), key=manifest_key(manifest.run_id)
        )
    )


def _write_reject(out: IO[bytes], item: RowError) -> None:
    record = {"line": item.line, "field": item.field, "error": str(item)}
    out.write(ENCODER.encode(record) + b"\n")


async def produce(
    kafka: KafkaSettings,
    layout: TopicLayout,
    options: ProduceOptions,
    *,
    on_reject: Callable[[RowError], None] | None = None,
    on_published: Callable[[int], None] | None = None,
    on_agent: Callable[[str], Any] | None = None,
) -> ProduceReport:
    """Publish every valid rollout of the input; report bad rows through ``on_reject``.

    Raises nothing for bad rows (they are counted and written to ``rejects_path``) unless
    ``fail_fast`` is set, in which case production stops at the first one and the report says
    where (``stopped_at``); the manifest is then left in state ``producing``.
    ``on_agent(agent)`` (may be async) is called before the first task of each agent is sent,
    so that ``collect`` can start that agent's workers.
    """
    report = ProduceReport(run_id=options.run_id)
    started = time.perf_counter()
    producer = build_producer(kafka)
    rejects: IO[bytes] | None = None
    materialized: IO[bytes] | None = None
    try:
        await producer.start()  # inside the try: a failed start still closes the client
        now_ms = int(time.time() * 1000)
        await publish_manifest(
            producer,
            layout,
            RunManifest(
                run_id=options.run_id,
                state="producing",
                input_path=str(options.input_path),
                created_ms=now_ms,
            ),
        )
        partitions: dict[str, list[int]] = {}
        next_partition: Counter[str] = Counter()
        pending: list[asyncio.Future[Any]] = []

        def good_rows() -> Any:
            nonlocal rejects
            for item in read_rows(
                options.input_path,
                default_agent=options.default_agent,
                known_agents=options.known_agents,
                limit=options.limit,
            ):
                if isinstance(item, InputRow):
                    report.rows += 1
                    yield item
                    continue
                report.rejected += 1
                if on_reject is not None:
                    on_reject(item)
                if options.rejects_path is not None:
                    if rejects is None:
                        options.rejects_path.parent.mkdir(parents=True, exist_ok=True)
                        rejects = options.rejects_path.open("wb")
                    _write_reject(rejects, item)
                if options.fail_fast:
                    report.stopped_at = item
                    return

        if options.materialized_path is not None:
            options.materialized_path.parent.mkdir(parents=True, exist_ok=True)
            materialized = options.materialized_path.open("wb")

        groups_started = 0
        for rollout in expand(good_rows(), num_repeats=options.num_repeats):
            rid = rollout_id(
                options.run_id, rollout.agent, rollout.task_index, rollout.rollout_index
            )
            if rid in options.skip_rollouts:
                report.skipped[rollout.agent] += 1
                continue
            if options.pacer is not None and rollout.rollout_index == 0:
                # back-pressure: a new group waits until the trainer is close enough behind
                if not options.pacer.has_room(groups_started) and pending:
                    await asyncio.gather(*pending)  # what is sent is visible while we wait
                    if on_published is not None:
                        on_published(len(pending))
                    pending.clear()
                await options.pacer.wait_for_room(groups_started)
                groups_started += 1
            row = (
                apply_overrides(rollout.row, options.overrides)
                if options.overrides
                else rollout.row
            )
            if options.rollout_seed is not None:
                row = apply_overrides(row, {"seed": options.rollout_seed + rollout.rollout_index})
            topic = layout.tasks(rollout.agent)
            if topic not in partitions:
                if on_agent is not None:
                    await _maybe_await(on_agent(rollout.agent))
                found = await producer.partitions_for(topic)
                if not found:
                    from gymstream.errors import ConfigError

                    raise ConfigError(
                        f"topic {topic} does not exist; run `gymstream topics apply` first"
                    )
                partitions[topic] = sorted(found)
            parts = partitions[topic]
            partition = parts[next_partition[topic] % len(parts)]
            next_partition[topic] += 1
            task = TaskMessage(
                run_id=options.run_id,
                rollout_id=rid,
                agent=rollout.agent,
                task_index=rollout.task_index,
                rollout_index=rollout.rollout_index,
                row=row,
                attempt=options.attempts.get(rid, 0),
                created_ms=int(time.time() * 1000),
                policy_version=options.policy_version,
            )
            if materialized is not None:
                materialized.write(
                    ENCODER.encode(
                        materialized_row(
                            row,
                            agent=rollout.agent,
                            task_index=rollout.task_index,
                            rollout_index=rollout.rollout_index,
                        )
                    )
                    + b"\n"
                )
            pending.append(
                await producer.send(
                    topic, ENCODER.encode(task), key=rid.encode("utf-8"), partition=partition
                )
            )
            report.published[rollout.agent] += 1
            if len(pending) >= _WINDOW:
                await asyncio.gather(*pending)
                if on_published is not None:
                    on_published(len(pending))
                pending.clear()
        if pending:
            await asyncio.gather(*pending)
            if on_published is not None:
                on_published(len(pending))
        if report.stopped_at is None:
            await publish_manifest(
                producer,
                layout,
                RunManifest(
                    run_id=options.run_id,
                    state="produced",
                    expected=report.expected,
                    input_path=str(options.input_path),
                    created_ms=now_ms,
                ),
            )
    finally:
        for handle in (rejects, materialized):
            if handle is not None:
                handle.close()
        await producer.stop()
    report.elapsed_s = time.perf_counter() - started
    return report


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
