"""Control records on the compacted runs topic: policy versions, stream progress, pacing.

Keys (next to the manifest, whose key is the bare run id; latest value wins):

- ``control/<run id>``: ``PolicyVersion``, the trainer's current policy version, published with
  ``publish_policy_version``; workers read it with ``latest_policy_version`` (once) or
  ``watch_policy_version`` (kept current in the background);
- ``progress/<run id>/<consumer>``: ``StreamProgress``, written by a trainer stream at every
  commit. It is both the stream's resume position (see ``stream.py``) and the count of units the
  trainer is done with, which a ``Pacer`` turns into back-pressure on the producer.

Readers start at the beginning of the runs topic and read without a consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, build_producer
from gymstream.kafka.topics import TopicLayout
from gymstream.settings import KafkaSettings
from gymstream.wire.codec import DECODE_MANIFEST, DECODE_POLICY_VERSION, DECODE_PROGRESS, ENCODER
from gymstream.wire.keys import CONTROL_PREFIX, PROGRESS_PREFIX, policy_version_key, progress_key
from gymstream.wire.records import PolicyVersion, RunManifest, StreamProgress

__all__ = [
    "DECODE_POLICY_VERSION",
    "DECODE_PROGRESS",
    "Pacer",
    "PolicyVersion",
    "PolicyVersionWatch",
    "RunsTail",
    "StreamProgress",
    "latest_policy_version",
    "open_pacer",
    "policy_version_key",
    "progress_key",
    "publish_policy_version",
    "read_manifests",
    "watch_policy_version",
]

log = logging.getLogger("gymstream.runs.control")


class RunsTail:
    """Reads the runs topic from its beginning, keeping the latest value of the chosen keys.

    ``keys=None`` keeps every key.
    ``read_to_end`` returns once everything present at ``start`` has been read; ``poll`` reads
    what arrived since. A tombstone (empty value) removes the key.
    """

    def __init__(
        self, kafka: KafkaSettings, layout: TopicLayout, keys: Iterable[bytes] | None
    ) -> None:
        self.topic = layout.runs
        self.keys = None if keys is None else frozenset(keys)
        self.latest: dict[bytes, bytes] = {}
        self._kafka = kafka
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._ends: dict[TopicPartition, int] = {}

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("RunsTail used before start()")
        return self._consumer

    async def start(self) -> None:
        self._consumer = build_consumer(self._kafka, group_id=None)
        await self._consumer.start()
        try:
            self._tps = await topic_partitions(self._consumer, self.topic)
            self._consumer.assign(self._tps)
            await self._consumer.seek_to_beginning(*self._tps)
            self._ends = dict(await self._consumer.end_offsets(self._tps))
        except BaseException:
            await self._consumer.stop()
            raise

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

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
                if key is None or (self.keys is not None and key not in self.keys):
                    continue
                if message.value:
                    self.latest[key] = message.value
                else:
                    self.latest.pop(key, None)
                changed.add(key)
        return changed


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``; ConfigError when the topic does not exist."""
    # what consumer.topics() does, keeping the partitions: partitions_for_topic() only knows
    # topics the client already tracks, and an assign-only consumer tracks none before assign()
    cluster = await consumer._client.fetch_all_metadata()
    parts = cluster.partitions_for_topic(topic)
    if not parts:
        raise ConfigError(
            f"topic {topic} does not exist: create the topics with `gymstream topics apply` "
            "(same --topic-prefix)"
        )
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def read_manifests(
    kafka: KafkaSettings, layout: TopicLayout, *, timeout_s: float = 30.0
) -> list[RunManifest]:
    """Every run's latest manifest on the runs topic, oldest first (by ``created_ms``)."""
    tail = RunsTail(kafka, layout, None)
    await tail.start()
    try:
        await tail.read_to_end(timeout_s)
    finally:
        await tail.stop()
    manifests = []
    for key, value in tail.latest.items():
        if key.startswith((CONTROL_PREFIX, PROGRESS_PREFIX)):
            continue
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            manifests.append(DECODE_MANIFEST.decode(value))
    return sorted(manifests, key=lambda m: (m.created_ms, m.run_id))


async def publish_policy_version(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, version: int
) -> PolicyVersion:
    """Publish the trainer's policy version for ``run_id`` (awaited: durable when it returns)."""
    record = PolicyVersion(run_id=run_id, version=version, updated_ms=int(time.time() * 1000))
    producer = build_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(
            layout.runs, ENCODER.encode(record), key=policy_version_key(run_id)
        )
    finally:
        await producer.stop()
    return record


async def latest_policy_version(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, *, timeout_s: float = 30.0
) -> int | None:
    """The last policy version published for ``run_id``, or None if none was.

    Reads the whole runs topic once: for a worker that checks often, ``watch_policy_version``
    keeps one reader open instead.
    """
    key = policy_version_key(run_id)
    tail = RunsTail(kafka, layout, [key])
    await tail.start()
    try:
        await tail.read_to_end(timeout_s)
    finally:
        await tail.stop()
    value = tail.latest.get(key)
    return None if value is None else _decode_version(value)


def _decode_version(value: bytes) -> int | None:
    try:
        return DECODE_POLICY_VERSION.decode(value).version
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("ignoring an undecodable policy version record: %s", exc)
        return None


class _Latest:
    """A value kept current by a background reader; ``wait_until`` blocks on a predicate."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._error: BaseException | None = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._notify()

    async def _wait(self, ready: Callable[[], bool], timeout_s: float | None) -> None:
        async with asyncio.timeout(timeout_s):
            while not ready():
                if self._error is not None:
                    raise self._error
                await self._changed.wait()


class PolicyVersionWatch(_Latest):
    """The latest published policy version of a run (``version``), kept current."""

    def __init__(self, version: int | None = None) -> None:
        super().__init__()
        self.version = version

    def update(self, version: int | None) -> None:
        if version is not None and version != self.version:
            self.version = version
            self._notify()

    async def wait_for(self, at_least: int, timeout_s: float | None = None) -> int:
        """Wait until the version is at least ``at_least``; TimeoutError after ``timeout_s``."""
        await self._wait(lambda: self.version is not None and self.version >= at_least, timeout_s)
        assert self.version is not None  # noqa: S101  # the predicate above ensures it
        return self.version


class Pacer(_Latest):
    """Keeps a producer at most ``max_ahead`` units ahead of the trainer.

    ``consumed`` is the number of units the trainer is done with (acknowledged or dropped, from
    its ``StreamProgress``); ``update`` sets it (``open_pacer`` does so from Kafka; tests and other
    sources may call it directly). Units are groups (or rollouts, for a rollout-mode stream).
    """

    def __init__(self, max_ahead: int, consumed: int = 0) -> None:
        if max_ahead < 1:
            raise ConfigError(f"max_ahead must be at least 1, not {max_ahead}")
        super().__init__()
        self.max_ahead = max_ahead
        self.consumed = consumed

    def update(self, consumed: int) -> None:
        if consumed > self.consumed:
            self.consumed = consumed
            self._notify()

    def has_room(self, produced: int) -> bool:
        """True when a producer that has published ``produced`` units may publish one more."""
        return produced - self.consumed < self.max_ahead

    async def wait_for_room(self, produced: int, timeout_s: float | None = None) -> int:
        """Wait until ``has_room(produced)``; returns ``consumed``. TimeoutError after timeout_s."""
        await self._wait(lambda: self.has_room(produced), timeout_s)
        return self.consumed


async def _follow(tail: RunsTail, on_change: Callable[[bytes], None], target: _Latest) -> None:
    try:
        while True:
            for key in await tail.poll(timeout_ms=500):
                on_change(tail.latest.get(key, b""))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # boundary: hand the failure to whoever waits on the value
        log.warning("reading %s failed: %s", tail.topic, exc)
        target._fail(exc)


@contextlib.asynccontextmanager
async def _following(
    tail: RunsTail, key: bytes, on_value: Callable[[bytes], None], target: _Latest
) -> AsyncIterator[None]:
    await tail.start()
    try:
        await tail.read_to_end()
        if key in tail.latest:
            on_value(tail.latest[key])
        task = asyncio.create_task(_follow(tail, on_value, target))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await tail.stop()


@contextlib.asynccontextmanager
async def watch_policy_version(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str
) -> AsyncIterator[PolicyVersionWatch]:
    """A ``PolicyVersionWatch`` for ``run_id``, current when entered and kept current."""
    key = policy_version_key(run_id)
    watch = PolicyVersionWatch()
    tail = RunsTail(kafka, layout, [key])
    async with _following(tail, key, lambda v: watch.update(_decode_version(v)), watch):
        yield watch


@contextlib.asynccontextmanager
async def open_pacer(
    kafka: KafkaSettings,
    layout: TopicLayout,
    run_id: str,
    *,
    max_ahead: int,
    consumer: str = "trainer",
) -> AsyncIterator[Pacer]:
    """A ``Pacer`` following the progress of the trainer stream named ``consumer``."""
    key = progress_key(run_id, consumer)
    pacer = Pacer(max_ahead)

    def on_value(value: bytes) -> None:
        try:
            pacer.update(DECODE_PROGRESS.decode(value).closed_units)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring an undecodable progress record: %s", exc)

    tail = RunsTail(kafka, layout, [key])
    async with _following(tail, key, on_value, pacer):
        yield pacer
