"""Live policy versions for workers: follow every run's ``control/<run id>`` record.

A trainer publishes its current policy version with ``control.publish_policy_version`` after it
loads new weights into the model endpoint; workers stamp each rollout with the version live when
the rollout started (falling back to the task's own version, then to the worker's configured
one), so the trainer's stream can measure and bound staleness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec

from gymstream.kafka.topics import TopicLayout
from gymstream.runs.control import DECODE_POLICY_VERSION, RunsTail
from gymstream.settings import KafkaSettings

__all__ = ["LiveVersions"]

log = logging.getLogger("gymstream.runs.policy")
_PREFIX = b"control/"


class LiveVersions:
    """Policy versions per run id, kept current by a background reader of the runs topic."""

    def __init__(self, kafka: KafkaSettings, layout: TopicLayout) -> None:
        self.versions: dict[str, int] = {}
        self._tail = RunsTail(kafka, layout, None)
        self._task: asyncio.Task[None] | None = None

    def get(self, run_id: str) -> int | None:
        return self.versions.get(run_id)

    def _apply(self, keys: set[bytes]) -> None:
        for key in keys:
            if not key.startswith(_PREFIX):
                continue
            value = self._tail.latest.get(key)
            if not value:
                self.versions.pop(key[len(_PREFIX) :].decode("utf-8", "replace"), None)
                continue
            try:
                record = DECODE_POLICY_VERSION.decode(value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("ignoring an undecodable policy version record: %s", exc)
                continue
            if self.versions.get(record.run_id) != record.version:
                log.info("run %s: policy version %d", record.run_id, record.version)
            self.versions[record.run_id] = record.version

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
        self._task = asyncio.create_task(self._follow(), name="policy-versions")

    async def _follow(self) -> None:
        while True:
            try:
                self._apply(await self._tail.poll(timeout_ms=500))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # boundary: keep the last versions, try again
                log.warning("reading policy versions failed: %s", exc)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._tail.stop()
