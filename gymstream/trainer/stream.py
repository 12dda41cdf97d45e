"""Streaming API for online trainers: a run's rollouts as whole groups, resumable exactly.

::

    options = StreamOptions(run_id="r1", group_size=8, max_staleness=2, drop_zero_variance=True)
    async with open_stream(kafka, layout, options) as stream:
        while batch := await stream.next_batch(16):
            train(batch)
            stream.set_policy_version(stream.policy_version + 1)
            position = await stream.commit()      # these 16 groups will never come again

A *unit* is a group (every rollout of one task; results are keyed by run/agent/task, so a group
lives in one partition) or, with ``unit="rollout"``, one rollout.

Delivery and commits. A unit is *handed* when ``next_batch``/``next_group``/iteration returns it,
and *acknowledged* by ``commit()``. Only acknowledged (or dropped) units are closed: a stream
reopened with the same ``consumer`` name (after a crash, say) delivers every unit that was
handed but not acknowledged again, and never one that was acknowledged. So call ``commit()``
after the step that trained on the units; a trainer that dies mid-step gets that step's units
again. ``commit="on_next"`` acknowledges everything handed when the next unit or batch is asked
for (right for a loop that trains synchronously between requests); ``"explicit"`` (default)
never acknowledges on its own.

Where the position lives. ``commit()`` writes a ``StreamProgress`` record to the compacted runs
topic under ``progress/<run id>/<consumer>``: per partition of the results and failures topics,
the offset to read again from (no unit still open or handed has a message below it), and the set
of closed units as ranges of task indices per agent. Reopening reads it, seeks there, rebuilds
the open units from the messages, and skips the closed ones (and late duplicates of them). We
chose one record over Kafka's commit metadata, which is capped at ``offset.metadata.max.bytes``
(4 KB by default) that a straggling group can overrun, and over a topic of delivered ids, which
would need a second write that can disagree with the offsets: one record is atomic, needs no new
topic, and is also the progress a ``Pacer`` reads. ``commit()`` returns the record: a trainer
that keeps it in its own checkpoint can reopen with ``resume_from=`` and get exactly the units
after that checkpoint, even if Kafka's record is newer.

Filters. Units older than ``max_staleness`` policy versions behind the trainer's
(``set_policy_version``) are dropped (``on_stale="drop"``) or delivered and counted
(``"keep"``); rollouts without a version are never stale. Zero-variance groups
(``drop_zero_variance``) and groups with a failed rollout (``incomplete="drop"``, default) are
dropped and counted. ``weights`` mixes agents in proportion (``selection.Mixer``). Every drop
closes the unit (it is not reconsidered after a restart) and is counted in ``stats``.

Memory: open units, plus at most ``max_held`` finished ones waiting to be handed out.
The stream ends (iteration stops, ``next_batch`` returns fewer or none) when the run's manifest
says ``produced`` and every expected rollout is accounted for.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Literal, Self

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, build_producer
from gymstream.kafka.topics import TopicLayout
from gymstream.runs.tail import RunsTail, topic_partitions
from gymstream.settings import KafkaSettings
from gymstream.trainer.grouping import Assembler, ClosedSet, Group, UnitKey, expected_units
from gymstream.trainer.selection import Mixer, StreamStats, is_zero_variance
from gymstream.wire.codec import (
    DECODE_FAILURE,
    DECODE_MANIFEST,
    DECODE_PROGRESS,
    DECODE_RESULT,
    ENCODER,
)
from gymstream.wire.keys import policy_version_key, progress_key
from gymstream.wire.records import PolicyVersion, RunManifest, StreamProgress

__all__ = [
    "GroupStream",
    "StreamOptions",
    "dump_position",
    "groups",
    "load_position",
    "open_stream",
    "rollouts",
]

log = logging.getLogger("gymstream.trainer.stream")


class StreamOptions(BaseModel):
    """What a trainer stream delivers and how; validated once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(min_length=1)
    unit: Literal["group", "rollout"] = "group"
    group_size: int | None = Field(
        None, ge=1, description="Rollouts per group: the run's number of repeats."
    )
    consumer: str = Field(
        "trainer",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Names the saved position (and the progress a Pacer follows).",
    )
    commit: Literal["explicit", "on_next"] = "explicit"
    from_beginning: bool = Field(False, description="Ignore a saved position; start afresh.")
    policy_version: int | None = Field(None, description="The trainer's version at the start.")
    max_staleness: int | None = Field(None, ge=0)
    on_stale: Literal["drop", "keep"] = "drop"
    drop_zero_variance: bool = False
    incomplete: Literal["drop", "deliver"] = "drop"
    weights: dict[str, float] | None = Field(None, description="Per-agent mixing weights.")
    max_held: int = Field(256, ge=1, description="Finished units held for mixing, at most.")
    fetch_records: int = Field(1000, ge=1)
    poll_ms: int = Field(200, ge=1)

    @model_validator(mode="after")
    def _group_size_for_groups(self) -> Self:
        if self.unit == "group" and self.group_size is None:
            raise ValueError("group_size is required for unit='group' (the run's repeats)")
        return self

    @property
    def unit_size(self) -> int:
        return 1 if self.unit == "rollout" else (self.group_size or 1)


def dump_position(position: StreamProgress) -> bytes:
    """A position as bytes, for a trainer's checkpoint."""
    return ENCODER.encode(position)


def load_position(data: bytes) -> StreamProgress:
    return DECODE_PROGRESS.decode(data)


class GroupStream:
    """One trainer's stream of a run (see the module docstring). Use ``open_stream``.

    Call it from one task at a time (it is not safe to ``commit`` while ``next_batch`` waits),
    and run one stream per ``consumer`` name: two would overwrite each other's position.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        layout: TopicLayout,
        options: StreamOptions,
        *,
        resume_from: StreamProgress | None = None,
    ) -> None:
        self.options = options
        self.layout = layout
        self.stats = StreamStats()
        self.manifest: RunManifest | None = None
        self.policy_version = options.policy_version
        self._resume_from = resume_from
        self._manifest_key = options.run_id.encode("utf-8")
        self._progress_key = progress_key(options.run_id, options.consumer)
        self._key_prefix = f"{options.run_id}/".encode()
        self._kafka = kafka
        self._runs = RunsTail(kafka, layout, [self._manifest_key, self._progress_key])
        self._consumer: AIOKafkaConsumer = None  # built in start(): nothing connects before
        self._producer: AIOKafkaProducer = None
        self._assembler = Assembler(
            options.run_id, options.group_size or 1, per_rollout=options.unit == "rollout"
        )
        self._mixer = Mixer(options.weights, options.max_held)
        self._handed: dict[UnitKey, Group] = {}
        self._expected: dict[str, int] | None = None
        self._acknowledged_before = 0
        self._saved: bytes = b""
        self._started: list[RunsTail | AIOKafkaConsumer | AIOKafkaProducer] = []

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Read the run's manifest and saved position, then seek to where the stream resumes."""
        await self._runs.start()
        self._started.append(self._runs)
        await self._runs.read_to_end()
        self._take_manifest()
        position = self._resume_from
        saved = self._runs.latest.get(self._progress_key)
        if position is None and saved is not None and not self.options.from_beginning:
            position = load_position(saved)
        if position is not None:
            self._restore(position)
        self._consumer = build_consumer(
            self._kafka, group_id=None, max_poll_records=self.options.fetch_records
        )
        await self._consumer.start()
        self._started.append(self._consumer)
        tps = [
            *await topic_partitions(self._consumer, self.layout.results),
            *await topic_partitions(self._consumer, self.layout.failures),
        ]
        self._consumer.assign(tps)
        unknown: list[TopicPartition] = []
        for tp in tps:
            offsets = {}
            if position is not None:
                is_results = tp.topic == self.layout.results
                offsets = position.results if is_results else position.failures
            offset = offsets.get(tp.partition)
            if offset is None:
                unknown.append(tp)
            else:
                self._consumer.seek(tp, offset)
                self._assembler.seek(tp, offset)
        if unknown:
            await self._consumer.seek_to_beginning(*unknown)  # one call: each waits for a fetch
        self._producer = build_producer(self._kafka)
        await self._producer.start()
        self._started.append(self._producer)

    async def close(self) -> None:
        """Stop reading. Units handed and not acknowledged stay unacknowledged."""
        while self._started:
            await self._started.pop().stop()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                await self._save()  # drops since the last commit; handed units stay open
        finally:
            await self.close()

    # --- what the trainer calls ----------------------------------------------------------
    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Group:
        if self.options.commit == "on_next" and self._handed:
            await self.commit()
        group = await self._next(None)
        if group is None:
            raise StopAsyncIteration
        return group

    async def next_group(self, timeout_s: float | None = None) -> Group | None:
        """The next unit; None when the stream is finished or ``timeout_s`` passed first."""
        batch = await self.next_batch(1, timeout_s)
        return batch[0] if batch else None

    async def next_batch(self, n: int, timeout_s: float | None = None) -> list[Group]:
        """Up to ``n`` units: fewer only when the stream finished or ``timeout_s`` passed.

        With ``commit="on_next"`` it first acknowledges everything handed before.
        """
        if n < 1:
            raise ValueError(f"batch size must be at least 1, not {n}")
        if self.options.commit == "on_next" and self._handed:
            await self.commit()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        batch: list[Group] = []
        while len(batch) < n:
            group = await self._next(deadline)
            if group is None:
                break
            batch.append(group)
        return batch

    @property
    def finished(self) -> bool:
        """True when every expected rollout of the run is handed, acknowledged or dropped."""
        return not len(self._mixer) and self._all_accounted(with_held=False)

    @property
    def handed(self) -> list[Group]:
        """Units handed and not acknowledged yet."""
        return list(self._handed.values())

    def set_policy_version(self, version: int) -> None:
        """The trainer's current policy version: staleness is measured against it."""
        self.policy_version = version

    async def publish_policy_version(self, version: int) -> None:
        """Set the version and publish it for workers (``control/<run id>`` on the runs topic)."""
        self.policy_version = version
        record = PolicyVersion(
            run_id=self.options.run_id, version=version, updated_ms=int(time.time() * 1000)
        )
        await self._producer.send_and_wait(
            self.layout.runs, ENCODER.encode(record), key=policy_version_key(self.options.run_id)
        )

    async def commit(self, units: Iterable[Group] | None = None) -> StreamProgress:
        """Acknowledge the handed ``units`` (default: all) and save the position durably.

        Returns the position written (keep it in a checkpoint to ``resume_from`` it). When the
        write fails the units stay acknowledged in this process and the next commit saves them.
        """
        keys = list(self._handed) if units is None else [u.key for u in units]
        for key in keys:
            if key not in self._handed:
                raise ValueError(f"unit {key} is not handed and unacknowledged")
        for key in keys:
            del self._handed[key]
            self._assembler.close(key)
        self.stats.acknowledged += len(keys)
        return await self._save()

    def position(self) -> StreamProgress:
        """The position as it stands (what ``commit()`` last wrote, plus drops since then)."""
        marks = self._assembler.watermarks()
        closed = self._assembler.closed
        return StreamProgress(
            run_id=self.options.run_id,
            consumer=self.options.consumer,
            unit=self.options.unit,
            group_size=self.options.unit_size,
            results={p: o for (t, p), o in marks.items() if t == self.layout.results},
            failures={p: o for (t, p), o in marks.items() if t == self.layout.failures},
            closed=closed.to_wire(),
            closed_units=closed.count(),
            acknowledged_units=self._acknowledged_before + self.stats.acknowledged,
            policy_version=self.policy_version,
        )

    # --- inside --------------------------------------------------------------------------
    async def _save(self) -> StreamProgress:
        position = self.position()
        encoded = ENCODER.encode(position)
        if encoded != self._saved:
            stamped = msgspec.structs.replace(position, updated_ms=int(time.time() * 1000))
            await self._producer.send_and_wait(
                self.layout.runs, ENCODER.encode(stamped), key=self._progress_key
            )
            self._saved = encoded
        return position

    def _restore(self, position: StreamProgress) -> None:
        o = self.options
        if (position.run_id, position.unit, position.group_size) != (o.run_id, o.unit, o.unit_size):
            raise ConfigError(
                f"the saved position of consumer '{position.consumer}' is for run "
                f"{position.run_id}, unit {position.unit}, group size {position.group_size}; "
                f"this stream asks for run {o.run_id}, unit {o.unit}, group size {o.unit_size}: "
                "use the same options, another --consumer name, or --from-beginning"
            )
        self._assembler.closed = ClosedSet.from_wire(position.closed)
        self._acknowledged_before = position.acknowledged_units
        if self.policy_version is None:
            self.policy_version = position.policy_version
        self._saved = ENCODER.encode(position)

    async def _next(self, deadline: float | None) -> Group | None:
        while True:
            group = self._mixer.pop(flush=self._all_accounted(), exhausted=self._exhausted())
            if group is not None:
                if self._is_stale(group):
                    self._drop(group, "stale")
                    continue
                self._mixer.served(group.agent)
                self._handed[group.key] = group
                self.stats.record_delivery(group, self.policy_version)
                return group
            if self.finished:
                return None
            left_ms = self.options.poll_ms
            if deadline is not None:
                left_ms = min(left_ms, int((deadline - time.monotonic()) * 1000))
                if left_ms <= 0:
                    return None
            await self._fetch(left_ms)

    async def _fetch(self, timeout_ms: int) -> None:
        batches = await self._consumer.getmany(
            timeout_ms=timeout_ms, max_records=self.options.fetch_records
        )
        for tp, messages in batches.items():
            is_result = tp.topic == self.layout.results
            for message in messages:
                finished = self._take(tp, message.offset, message.key, message.value, is_result)
                if finished is not None:
                    self._admit(finished)
        counts = self._assembler.counts
        self.stats.duplicates, self.stats.closed_skipped = counts.duplicates, counts.closed_skipped
        if await self._runs.poll():
            self._take_manifest()

    def _take(
        self,
        tp: TopicPartition,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        is_result: bool,
    ) -> Group | None:
        if not value or key is None or not key.startswith(self._key_prefix):
            self._assembler.seek(tp, offset + 1)  # another run's (the key is run/agent/task)
            return None
        try:
            if is_result:
                return self._assembler.add_result(tp, offset, DECODE_RESULT.decode(value))
            return self._assembler.add_failure(tp, offset, DECODE_FAILURE.decode(value))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("skipping undecodable message at %s/%d/%d: %s", *tp, offset, exc)
            self.stats.dropped["undecodable"] += 1
            self._assembler.seek(tp, offset + 1)
            return None

    def _admit(self, group: Group) -> None:
        """A unit just finished: drop it (and say why) or hold it for the trainer."""
        if group.failed and (self.options.incomplete == "drop" or not group.rollouts):
            self._drop(group, "incomplete")
        elif self.options.drop_zero_variance and is_zero_variance(group):
            self._drop(group, "zero_variance")
        elif not self._mixer.accepts(group.agent):
            self._drop(group, "unweighted")
        elif self._is_stale(group):
            self._drop(group, "stale")
        else:
            self._mixer.push(group)

    def _drop(self, group: Group, reason: str) -> None:
        self._assembler.close(group.key)
        self.stats.record_drop(group, reason)

    def _is_stale(self, group: Group) -> bool:
        limit = self.options.max_staleness
        if limit is None or self.options.on_stale == "keep":
            return False
        staleness = group.staleness(self.policy_version)
        return staleness is not None and staleness > limit

    def _take_manifest(self) -> None:
        value = self._runs.latest.get(self._manifest_key)
        if value is None:
            return
        try:
            manifest = DECODE_MANIFEST.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring an undecodable manifest of run %s: %s", self.options.run_id, exc)
            return
        self.manifest = manifest
        if manifest.state == "produced":
            self._expected = expected_units(manifest.expected, self.options.unit_size)

    def _accounted(self, agent: str, *, with_held: bool) -> int:
        n = self._assembler.closed.count(agent)
        n += sum(1 for key in self._handed if key.agent == agent)
        return n + (self._mixer.held(agent) if with_held else 0)

    def _all_accounted(self, *, with_held: bool = True) -> bool:
        if self._expected is None:
            return False
        return all(
            self._accounted(agent, with_held=with_held) >= units
            for agent, units in self._expected.items()
        )

    def _exhausted(self) -> set[str]:
        """Agents that will get no more units (all their expected units are in sight)."""
        if self._expected is None:
            return set()
        absent = {a for a in self.options.weights or {} if a not in self._expected}
        return absent | {
            agent
            for agent, units in self._expected.items()
            if self._accounted(agent, with_held=True) >= units
        }


@contextlib.asynccontextmanager
async def open_stream(
    kafka: KafkaSettings,
    layout: TopicLayout,
    options: StreamOptions,
    *,
    resume_from: StreamProgress | None = None,
) -> AsyncIterator[GroupStream]:
    """A started ``GroupStream``; closed (without acknowledging handed units) on exit."""
    async with GroupStream(kafka, layout, options, resume_from=resume_from) as stream:
        yield stream


async def groups(
    kafka: KafkaSettings, layout: TopicLayout, options: StreamOptions
) -> AsyncIterator[Group]:
    """Every unit of the run, each acknowledged when the next one is asked for.

    ``commit="on_next"`` whatever ``options`` say: a unit the loop body finished with is
    acknowledged; the one in hand when the loop breaks or crashes comes again next time.
    Close it with ``contextlib.aclosing`` when breaking out early.
    """
    async with open_stream(kafka, layout, options.model_copy(update={"commit": "on_next"})) as s:
        async for group in s:
            yield group


async def rollouts(
    kafka: KafkaSettings, layout: TopicLayout, options: StreamOptions
) -> AsyncIterator[Group]:
    """Like ``groups`` with ``unit="rollout"``: each unit holds one rollout."""
    async for unit in groups(kafka, layout, options.model_copy(update={"unit": "rollout"})):
        yield unit
