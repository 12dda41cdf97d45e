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

Group sizes. Each agent's groups are as large as its repeats, which the producer records in the
run's manifest (``RunManifest.repeats``); ``group_size`` overrides that for every agent.

Several runs. ``run_ids`` (a list) or ``run_prefix`` (every run whose manifest is on the runs
topic when the stream opens, oldest first; a later run is picked up by the next open) stream
several runs, e.g. one per epoch, through one reader (``runset.RunSet``). Each run keeps its own
position record, so whole groups and exact resume hold per run; ``commit()`` returns every run's
position, and ``resume_from`` takes them back. Units come run by run, in that order. The stream
ends when every run is complete.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gymstream.errors import ConfigError
from gymstream.kafka.clients import topic_partitions
from gymstream.kafka.topics import TopicLayout
from gymstream.runs.policy import send_policy_version
from gymstream.runs.tail import RunsTail
from gymstream.settings import KafkaSettings
from gymstream.stage.commit import RecordCommit
from gymstream.stage.runtime import Stage
from gymstream.trainer.grouping import Group
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.position import PositionWriter, dump_position, load_position
from gymstream.trainer.runset import RunSet
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

Checkpoint = StreamProgress | Iterable[StreamProgress]
"""What ``resume_from`` takes: one run's position, or those of several (what ``commit`` returns)."""


class GroupStream:
    """One trainer's stream of one or several runs (see the module doc). Use ``open_stream``.

    Call it from one task at a time (it is not safe to ``commit`` while ``next_batch`` waits),
    and run one stream per ``consumer`` name: two would overwrite each other's position.
    The Kafka side lives here (a handler on ``stage.runtime.Stage``; its commit policy is
    ``stage.commit.RecordCommit``); what is held, handed and closed is a ``runset.RunSet`` (a
    ``delivery.Delivery`` per run).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        layout: TopicLayout,
        options: StreamOptions,
        *,
        resume_from: Checkpoint | None = None,
    ) -> None:
        self.options = options
        self.layout = layout
        self.manifests: dict[str, RunManifest] = {}
        self.run_ids: list[str] = list(options.run_ids) or [options.run_id]
        checkpoint = [resume_from] if isinstance(resume_from, StreamProgress) else resume_from
        self._resume_from = {p.run_id: p for p in checkpoint or ()}
        keys = [k for run in self.run_ids for k in (manifest_key(run), self._progress_key(run))]
        self._runs = RunsTail(kafka, layout, None if options.run_prefix else keys)
        self._consumer: AIOKafkaConsumer = None  # built in start(): nothing connects before
        self._producer: AIOKafkaProducer = None
        self._runset: RunSet | None = None  # built in start(), once the runs are known
        self._writers: dict[str, PositionWriter] = {}
        self._stage = Stage(kafka, who="trainer stream")
        self._record: RecordCommit | None = None  # the position's commit policy, in start()

    @property
    def _set(self) -> RunSet:
        if self._runset is None:
            raise RuntimeError("GroupStream used before start(): use open_stream")
        return self._runset

    @property
    def manifest(self) -> RunManifest | None:
        """The (first) run's manifest, once read."""
        return self.manifests.get(self.run_ids[0]) if self.run_ids else None

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Read the runs' manifests and saved positions, then seek to where the stream resumes.

        Its parts (runs tail, consumer, producer) start on a ``stage.runtime.Stage``, in that
        order; ``close`` stops them in reverse. ConfigError when ``run_prefix`` matches no run
        on the runs topic, or a saved position was made with other options."""
        await self._stage.start(self._runs)
        await self._runs.read_to_end()
        if self.options.run_prefix:
            self.run_ids = self._runs_with_prefix(self.options.run_prefix)
        self._runset = RunSet(
            self.options,
            self.run_ids,
            results_topic=self.layout.results,
            failures_topic=self.layout.failures,
        )
        self._take_manifests()
        positions = self._positions_to_resume()
        self._set.restore(positions)
        for run_id in self.run_ids:
            self._writers[run_id] = writer = PositionWriter(self._sender(run_id))
            if run_id in positions:
                writer.restored(positions[run_id])
        self._consumer = await self._stage.consumer(
            group_id=None, max_poll_records=self.options.fetch_records
        )
        await self._seek(positions)
        self._producer = await self._stage.producer()
        self._record = RecordCommit(self._producer, self.layout.runs)

    async def _seek(self, positions: dict[str, StreamProgress]) -> None:
        """Assign every partition of the results and failures topics and seek each to where
        the stream resumes (the beginning where nothing is known)."""
        tps = [
            *await topic_partitions(self._consumer, self.layout.results),
            *await topic_partitions(self._consumer, self.layout.failures),
        ]
        self._consumer.assign(tps)
        unknown: list[TopicPartition] = []
        for tp in tps:
            is_results = tp.topic == self.layout.results
            saved = {
                run_id: (p.results if is_results else p.failures).get(tp.partition)
                for run_id, p in positions.items()
            }
            offset = self._set.start_offset((tp.topic, tp.partition), saved)
            if offset is None:
                unknown.append(tp)
            else:
                self._consumer.seek(tp, offset)
        if unknown:
            await self._consumer.seek_to_beginning(*unknown)  # one call: each waits for a fetch

    async def close(self) -> None:
        """Stop reading. Units handed and not acknowledged stay unacknowledged."""
        await self._stage.aclose()

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
        if self.options.commit == "on_next" and self._set.handed:
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
        if self.options.commit == "on_next" and self._set.handed:
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
        """Counts of this session (over every run): delivered, dropped by reason, staleness..."""
        return self._set.stats

    @property
    def policy_version(self) -> int | None:
        """The trainer's current policy version (``set_policy_version``)."""
        return self._set.policy_version

    @property
    def finished(self) -> bool:
        """True when every expected rollout of every run is handed, acknowledged or dropped."""
        return self._set.finished

    @property
    def handed(self) -> list[Group]:
        """Units handed and not acknowledged yet."""
        return self._set.handed

    def set_policy_version(self, version: int) -> None:
        """The trainer's current policy version: staleness is measured against it."""
        self._set.policy_version = version

    async def publish_policy_version(self, version: int) -> None:
        """Set the version and publish it for workers (``control/<run id>`` of every run)."""
        self.set_policy_version(version)
        for run_id in self.run_ids:
            await send_policy_version(self._producer, self.layout, run_id, version)

    async def commit(self, units: Iterable[Group] | None = None) -> list[StreamProgress]:
        """Acknowledge the handed ``units`` (default: all) and save the positions durably.

        Returns every run's position (keep them in a checkpoint to ``resume_from`` them). When
        a write fails the units stay acknowledged in this process and the next commit saves them.
        """
        self._set.acknowledge(units)
        return await self._save()

    def positions(self) -> list[StreamProgress]:
        """Every run's position as it stands (what ``commit()`` last wrote, plus drops since)."""
        return self._set.positions()

    # --- inside --------------------------------------------------------------------------
    async def _save(self) -> list[StreamProgress]:
        positions = self.positions()
        for position in positions:
            await self._writers[position.run_id].save(position)
        return positions

    def _progress_key(self, run_id: str) -> bytes:
        return progress_key(run_id, self.options.consumer)

    def _sender(self, run_id: str) -> Callable[[bytes], Awaitable[object]]:
        key = self._progress_key(run_id)

        async def send(value: bytes) -> None:
            if self._record is None:
                raise RuntimeError("GroupStream used before start(): use open_stream")
            await self._record.commit(key, value)  # the position is durable once acked

        return send

    def _runs_with_prefix(self, prefix: str) -> list[str]:
        found = [m.run_id for m in self._runs.manifests() if m.run_id.startswith(prefix)]
        if not found:
            raise ConfigError(
                f"no run whose id starts with '{prefix}' on {self.layout.runs}: produce one "
                "first, or check the prefix and --topic-prefix"
            )
        return found

    def _positions_to_resume(self) -> dict[str, StreamProgress]:
        """Per run: the checkpoint given, else the saved record (strict: never restart a
        stream silently), else nothing (``from_beginning`` ignores saved records)."""
        positions: dict[str, StreamProgress] = {}
        for run_id in self.run_ids:
            position = self._resume_from.get(run_id)
            saved = self._runs.latest.get(self._progress_key(run_id))
            if position is None and saved is not None and not self.options.from_beginning:
                position = load_position(saved)
            if position is not None:
                positions[run_id] = position
        return positions

    async def _next(self, deadline: float | None) -> Group | None:
        while True:
            group = self._set.pop()
            if group is not None:
                return group
            if self._set.finished:
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
                self._set.take(tp, message.offset, message.key, message.value)
        if await self._runs.poll():
            self._take_manifests()

    def _take_manifests(self) -> None:
        for run_id in self.run_ids:
            manifest = self._runs.manifest(run_id)
            if manifest is not None and manifest != self.manifests.get(run_id):
                self.manifests[run_id] = manifest
                self._set.take_manifest(manifest)


@contextlib.asynccontextmanager
async def open_stream(
    kafka: KafkaSettings,
    layout: TopicLayout,
    options: StreamOptions,
    *,
    resume_from: Checkpoint | None = None,
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
