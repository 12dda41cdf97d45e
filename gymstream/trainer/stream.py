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
import time
from collections.abc import AsyncIterator, Iterable
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gymstream.kafka.clients import build_consumer, build_producer, topic_partitions
from gymstream.kafka.topics import TopicLayout
from gymstream.runs.policy import send_policy_version
from gymstream.runs.tail import RunsTail
from gymstream.settings import KafkaSettings
from gymstream.trainer.delivery import Delivery
from gymstream.trainer.grouping import Group
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.position import PositionWriter, dump_position, load_position
from gymstream.trainer.selection import StreamStats
from gymstream.wire.keys import manifest_key, progress_key
from gymstream.wire.records import RunManifest, StreamProgress

__all__ = [
    "GroupStream",
    "StreamOptions",
    "dump_position",
    "groups",
    "load_position",
    "open_stream",
    "rollouts",
]


class GroupStream:
    """One trainer's stream of a run (see the module docstring). Use ``open_stream``.

    Call it from one task at a time (it is not safe to ``commit`` while ``next_batch`` waits),
    and run one stream per ``consumer`` name: two would overwrite each other's position.
    The Kafka side lives here; what is held, handed and closed is a ``delivery.Delivery``.
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
        self.manifest: RunManifest | None = None
        self._resume_from = resume_from
        self._progress_key = progress_key(options.run_id, options.consumer)
        self._kafka = kafka
        self._runs = RunsTail(kafka, layout, [manifest_key(options.run_id), self._progress_key])
        self._consumer: AIOKafkaConsumer = None  # built in start(): nothing connects before
        self._producer: AIOKafkaProducer = None
        self._delivery = Delivery(
            options, results_topic=layout.results, failures_topic=layout.failures
        )
        self._writer = PositionWriter(self._send_position)
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
            position = load_position(saved)  # strict: never restart a stream silently
        if position is not None:
            self._delivery.restore(position)
            self._writer.restored(position)
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
                self._delivery.assembler.seek(tp, offset)
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
        if self.options.commit == "on_next" and self._delivery.handed:
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
        if self.options.commit == "on_next" and self._delivery.handed:
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
    def stats(self) -> StreamStats:
        """Counts of this session: delivered, dropped by reason, staleness, duplicates."""
        return self._delivery.stats

    @property
    def policy_version(self) -> int | None:
        """The trainer's current policy version (``set_policy_version``)."""
        return self._delivery.policy_version

    @property
    def finished(self) -> bool:
        """True when every expected rollout of the run is handed, acknowledged or dropped."""
        return self._delivery.finished

    @property
    def handed(self) -> list[Group]:
        """Units handed and not acknowledged yet."""
        return list(self._delivery.handed.values())

    def set_policy_version(self, version: int) -> None:
        """The trainer's current policy version: staleness is measured against it."""
        self._delivery.policy_version = version

    async def publish_policy_version(self, version: int) -> None:
        """Set the version and publish it for workers (``control/<run id>`` on the runs topic)."""
        self.set_policy_version(version)
        await send_policy_version(self._producer, self.layout, self.options.run_id, version)

    async def commit(self, units: Iterable[Group] | None = None) -> StreamProgress:
        """Acknowledge the handed ``units`` (default: all) and save the position durably.

        Returns the position written (keep it in a checkpoint to ``resume_from`` it). When the
        write fails the units stay acknowledged in this process and the next commit saves them.
        """
        self._delivery.acknowledge(units)
        return await self._save()

    def position(self) -> StreamProgress:
        """The position as it stands (what ``commit()`` last wrote, plus drops since then)."""
        return self._delivery.position()

    # --- inside --------------------------------------------------------------------------
    async def _save(self) -> StreamProgress:
        position = self.position()
        await self._writer.save(position)
        return position

    async def _send_position(self, value: bytes) -> None:
        await self._producer.send_and_wait(self.layout.runs, value, key=self._progress_key)

    async def _next(self, deadline: float | None) -> Group | None:
        while True:
            group = self._delivery.pop()
            if group is not None:
                return group
            if self._delivery.finished:
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
            for message in messages:
                self._delivery.take(tp, message.offset, message.key, message.value)
        if await self._runs.poll():
            self._take_manifest()

    def _take_manifest(self) -> None:
        manifest = self._runs.manifest(self.options.run_id)
        if manifest is not None:
            self.manifest = manifest
            self._delivery.take_manifest(manifest)


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
