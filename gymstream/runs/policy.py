"""Policy versions on the runs topic: publish one, read the latest, follow them live.

A trainer publishes its current policy version (``control/<run id>``) with
``publish_policy_version`` (or ``GroupStream.publish_policy_version``) after it loads new weights
into the model endpoint. Workers follow every run's version with ``LiveVersions`` and stamp each
rollout with the version live when the rollout started (falling back to the task's own version,
then to the worker's configured one), so the trainer's stream can measure and bound staleness.
"""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaProducer

from gymstream.kafka.clients import build_producer
from gymstream.kafka.topics import TopicLayout
from gymstream.runs.tail import Changes, RunsTail
from gymstream.settings import KafkaSettings
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import CONTROL_PREFIX, policy_version_key
from gymstream.wire.records import PolicyVersion

__all__ = ["LiveVersions", "latest_policy_version", "publish_policy_version", "send_policy_version"]

log = logging.getLogger("gymstream.runs.policy")


async def send_policy_version(
    producer: AIOKafkaProducer, layout: TopicLayout, run_id: str, version: int
) -> PolicyVersion:
    """Publish ``version`` for ``run_id`` with a started producer (awaited: durable on return)."""
    record = PolicyVersion(run_id=run_id, version=version, updated_ms=int(time.time() * 1000))
    await producer.send_and_wait(
        layout.runs, ENCODER.encode(record), key=policy_version_key(run_id)
    )
    return record


async def publish_policy_version(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, version: int
) -> PolicyVersion:
    """Publish the trainer's policy version for ``run_id`` (awaited: durable when it returns)."""
    producer = build_producer(kafka)
    await producer.start()
    try:
        return await send_policy_version(producer, layout, run_id, version)
    finally:
        await producer.stop()


async def latest_policy_version(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, *, timeout_s: float = 30.0
) -> int | None:
    """The last policy version published for ``run_id``, or None if none was.

    Reads the whole runs topic once: a worker, which checks often, follows with ``LiveVersions``.
    """
    async with RunsTail(kafka, layout, [policy_version_key(run_id)]) as tail:
        await tail.read_to_end(timeout_s)
    record = tail.policy_version(run_id)
    return None if record is None else record.version


class LiveVersions:
    """Policy versions per run id, kept current by a background reader of the runs topic.

    ``start`` reads what is there and then follows; it never fails (versions are optional: a
    worker without them uses the task's or its configured version), and a failed read is tried
    again. ``wait_for`` blocks until a run reaches a version. Also an async context manager.
    """

    def __init__(self, kafka: KafkaSettings, layout: TopicLayout) -> None:
        self.versions: dict[str, int] = {}
        self._tail = RunsTail(kafka, layout, prefix=CONTROL_PREFIX)
        self._changes = Changes()

    def get(self, run_id: str) -> int | None:
        return self.versions.get(run_id)

    def update(self, run_id: str, version: int | None) -> None:
        """Set the run's version (None: the record was deleted) and wake the waiters."""
        if version is None:
            self.versions.pop(run_id, None)
            return
        if self.versions.get(run_id) != version:
            log.info("run %s: policy version %d", run_id, version)
            self.versions[run_id] = version
            self._changes.notify()

    async def wait_for(self, run_id: str, at_least: int, timeout_s: float | None = None) -> int:
        """Wait until the run's version is at least ``at_least``; TimeoutError after timeout_s."""

        def reached() -> bool:
            version = self.versions.get(run_id)
            return version is not None and version >= at_least

        await self._changes.wait_until(reached, timeout_s)
        return self.versions[run_id]

    def _apply(self, keys: set[bytes]) -> None:
        for key in keys:
            run_id = key.removeprefix(CONTROL_PREFIX).decode("utf-8", "replace")
            record = self._tail.policy_version(run_id)
            if record is not None:
                self.update(record.run_id, record.version)
            elif key not in self._tail.latest:
                self.update(run_id, None)

    async def start(self) -> None:
        """Read what is there, then follow in the background. Never fails the worker."""
        try:
            await self._tail.start()
            await self._tail.read_to_end()
        except Exception as exc:  # boundary: versions are optional, the worker goes on
            log.warning("not following policy versions (%s); using task/config versions", exc)
            await self._tail.stop()
            return
        self._apply(set(self._tail.latest))
        self._tail.follow(self._apply, retry_s=1.0)

    async def stop(self) -> None:
        await self._tail.stop()

    async def __aenter__(self) -> LiveVersions:
        await self.start()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.stop()
