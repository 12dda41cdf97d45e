"""The one reader of the compacted runs topic: every manifest, policy version and progress record.

The runs topic holds, latest value per key (keys from ``wire.keys``): each run's ``RunManifest``
under the bare run id, the trainer's ``PolicyVersion`` under ``control/<run>``, and each trainer
stream's ``StreamProgress`` under ``progress/<run>/<consumer>``, and the sink's ``SinkProgress``
under ``sink/<run>``. A ``RunsTail`` reads it from the beginning, without a consumer group,
keeping the latest value of the keys it was asked for; it decodes them (``manifest``,
``manifests``, ``policy_version``, ``progress``, ``stream_positions``, ``sink_progress``) and can
keep them current in the background (``follow``). The sink, the trainer stream, the
policy-version follower, the pacer and ``gymstream status`` all read the topic through it. Its
consumer and follower live on a ``stage.runtime.Stage`` (one order to start and stop them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Self, TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from gymstream.kafka.clients import topic_partitions
from gymstream.kafka.topics import TopicLayout
from gymstream.settings import KafkaSettings
from gymstream.stage.runtime import Stage
from gymstream.wire.codec import (
    DECODE_MANIFEST,
    DECODE_MODEL_OUTAGE,
    DECODE_POLICY_VERSION,
    DECODE_PROGRESS,
    DECODE_SINK_PROGRESS,
)
from gymstream.wire.keys import (
    CONTROL_PREFIX,
    OUTAGE_PREFIX,
    PROGRESS_PREFIX,
    SINK_PREFIX,
    manifest_key,
    policy_version_key,
    progress_key,
    progress_run_prefix,
    sink_progress_key,
)
from gymstream.wire.records import (
    ModelOutageRecord,
    PolicyVersion,
    RunManifest,
    SinkProgress,
    StreamProgress,
)

__all__ = ["Changes", "RunsTail", "read_manifests"]

log = logging.getLogger("gymstream.runs.tail")

_T = TypeVar("_T")


class RunsTail:
    """Reads the runs topic from its beginning, keeping the latest value of the chosen keys.

    It keeps the keys in ``keys`` and those starting with ``prefix``; every key when given
    neither. ``read_to_end`` returns once everything present at ``start`` has been read;
    ``poll`` reads what arrived since; ``follow`` keeps polling in the background until
    ``stop``. A tombstone (empty value) removes the key. Use it as an async context manager,
    or call ``start`` and ``stop``.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        layout: TopicLayout,
        keys: Iterable[bytes] | None = None,
        *,
        prefix: bytes | None = None,
    ) -> None:
        self.topic = layout.runs
        self.keys = None if keys is None else frozenset(keys)
        self.prefix = prefix
        self.latest: dict[bytes, bytes] = {}
        self._kafka = kafka
        self._stage: Stage | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._ends: dict[TopicPartition, int] = {}
        self._follower: asyncio.Task[None] | None = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("RunsTail used before start()")
        return self._consumer

    def wants(self, key: bytes) -> bool:
        """Whether this tail keeps ``key``."""
        if self.keys is None and self.prefix is None:
            return True
        in_keys = self.keys is not None and key in self.keys
        return in_keys or (self.prefix is not None and key.startswith(self.prefix))

    async def start(self) -> None:
        """Read from the beginning: a consumer without a group on every partition (a
        ``stage.runtime.Stage``: a failed start closes what it opened)."""
        self._stage = stage = Stage(self._kafka, who=f"reader of {self.topic}")
        try:
            self._consumer = await stage.consumer(group_id=None)
            self._tps = await topic_partitions(self._consumer, self.topic)
            self._consumer.assign(self._tps)
            await self._consumer.seek_to_beginning(*self._tps)
            self._ends = dict(await self._consumer.end_offsets(self._tps))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop following (if it does) and close the reader; safe to call again."""
        await self._stop_following()
        stage, self._stage = self._stage, None
        if stage is not None:
            await stage.aclose()
        self._consumer = None

    async def _stop_following(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.stop()

    async def read_to_end(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            behind = [tp for tp in self._tps if await self.consumer.position(tp) < self._ends[tp]]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic} to its end in {timeout_s:.0f} s")
            await self.poll(timeout_ms=200)

    async def poll(self, timeout_ms: int = 0) -> set[bytes]:
        """Read what is there (waiting up to ``timeout_ms``); the keys whose value changed."""
        changed: set[bytes] = set()
        batches = await self.consumer.getmany(timeout_ms=timeout_ms)
        for messages in batches.values():
            for message in messages:
                key = message.key
                if key is None or not self.wants(key):
                    continue
                if message.value:
                    self.latest[key] = message.value
                else:
                    self.latest.pop(key, None)
                changed.add(key)
        return changed

    def follow(
        self,
        on_change: Callable[[set[bytes]], None],
        *,
        on_error: Callable[[Exception], None] | None = None,
        retry_s: float | None = None,
        poll_ms: int = 500,
    ) -> None:
        """Keep reading in the background until ``stop``, calling ``on_change`` with the keys
        whose value changed. A failed read is logged; then, with ``retry_s``, reading goes on
        after that many seconds; without, ``on_error`` gets the error and following ends."""
        if self._follower is not None:
            raise RuntimeError("this RunsTail already follows")
        self._follower = asyncio.create_task(
            self._follow(on_change, on_error, retry_s, poll_ms), name=f"follow {self.topic}"
        )

    async def _follow(
        self,
        on_change: Callable[[set[bytes]], None],
        on_error: Callable[[Exception], None] | None,
        retry_s: float | None,
        poll_ms: int,
    ) -> None:
        while True:
            try:
                changed = await self.poll(timeout_ms=poll_ms)
                if changed:
                    on_change(changed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # boundary: hand the failure on, or try again
                log.warning("reading %s failed: %s", self.topic, exc)
                if retry_s is None:
                    if on_error is not None:
                        on_error(exc)
                    return
                await asyncio.sleep(retry_s)

    # --- the records, decoded (an undecodable one is logged and reads as absent) --------------
    def manifest(self, run_id: str) -> RunManifest | None:
        return self._decode(manifest_key(run_id), DECODE_MANIFEST)

    def manifests(self) -> list[RunManifest]:
        """Every run's manifest held, oldest first (by ``created_ms``, then run id)."""
        found = []
        for key in list(self.latest):
            if key.startswith((CONTROL_PREFIX, PROGRESS_PREFIX, SINK_PREFIX, OUTAGE_PREFIX)):
                continue
            manifest = self._decode(key, DECODE_MANIFEST)
            if manifest is not None:
                found.append(manifest)
        return sorted(found, key=lambda m: (m.created_ms, m.run_id))

    def policy_version(self, run_id: str) -> PolicyVersion | None:
        return self._decode(policy_version_key(run_id), DECODE_POLICY_VERSION)

    def progress(self, run_id: str, consumer: str) -> StreamProgress | None:
        return self._decode(progress_key(run_id, consumer), DECODE_PROGRESS)

    def stream_positions(self, run_id: str) -> list[StreamProgress]:
        """Every trainer stream's position held for the run, by consumer name."""
        prefix = progress_run_prefix(run_id)
        keys = [k for k in self.latest if k.startswith(prefix)]
        found = [self._decode(k, DECODE_PROGRESS) for k in keys]
        mine = (p for p in found if p is not None and p.run_id == run_id)
        return sorted(mine, key=lambda p: p.consumer)

    def sink_progress(self, run_id: str) -> SinkProgress | None:
        return self._decode(sink_progress_key(run_id), DECODE_SINK_PROGRESS)

    def model_outages(self) -> list[ModelOutageRecord]:
        """Every worker's model outage held (ended ones are tombstones: gone)."""
        keys = [k for k in self.latest if k.startswith(OUTAGE_PREFIX)]
        found = [self._decode(k, DECODE_MODEL_OUTAGE) for k in keys]
        return [o for o in found if o is not None]

    def _decode(self, key: bytes, decoder: msgspec.json.Decoder[_T]) -> _T | None:
        value = self.latest.get(key)
        if value is None:
            return None
        try:
            return decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring an undecodable record under %r on %s: %s", key, self.topic, exc)
            return None


class Changes:
    """Wakes whoever waits on a value a tail keeps current (``notify``; ``fail`` wakes them with
    the tail's error); ``wait_until`` blocks until a predicate holds."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._error: BaseException | None = None

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self.notify()

    async def wait_until(self, ready: Callable[[], bool], timeout_s: float | None) -> None:
        """Return once ``ready()``; raises the tail's error, or TimeoutError after timeout_s."""
        async with asyncio.timeout(timeout_s):
            while not ready():
                if self._error is not None:
                    raise self._error
                await self._changed.wait()


async def read_manifests(
    kafka: KafkaSettings, layout: TopicLayout, *, timeout_s: float = 30.0
) -> list[RunManifest]:
    """Every run's latest manifest on the runs topic, oldest first (by ``created_ms``)."""
    async with RunsTail(kafka, layout) as tail:
        await tail.read_to_end(timeout_s)
    return tail.manifests()
