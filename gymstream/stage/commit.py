"""The three commit policies of the stages, each naming its order: what is durable before what.

- ``WatermarkCommit`` (the worker): an output is acknowledged by Kafka, then its offset is done
  in ``kafka.offsets.OffsetTracker``; what is committed per partition is the watermark (the
  lowest offset not yet done), so a crash redoes work and never loses a task. A refused commit
  (the group moved on) is said once per streak; a freeze past the session timeout (``stalled``)
  is said once, with its cause, instead.
- ``FsyncCommit`` (the sink): rows are appended, flushed and fsynced (``append``), then the
  consumer's position is committed (``commit``): a crash between the two repeats rows, which
  the sink's ledger drops.
- ``RecordCommit`` (the trainer stream): the position is one record on the compacted runs
  topic; the commit is the producer's acknowledgement of that record.

Quix Streams' ``Checkpoint.commit()`` is the model: one named place where the order is kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from aiokafka.errors import KafkaError

from gymstream.kafka.offsets import OffsetTracker
from gymstream.stage.streak import Streak

__all__ = ["FsyncCommit", "RecordCommit", "WatermarkCommit"]

log = logging.getLogger("gymstream.stage.commit")


class WatermarkCommit:
    """Commit each partition's watermark from ``tracker`` (see the module docstring).

    ``tick()`` is called before a refusal is logged: the stall watch's check, so that a commit
    running just after a freeze blames the freeze (``stalled``), not only the refusal.
    """

    def __init__(
        self,
        consumer: Any,
        tracker: OffsetTracker[Any],
        *,
        session_timeout_s: float,
        tick: Callable[[], None] = lambda: None,
    ) -> None:
        self.consumer = consumer
        self.tracker = tracker
        self.session_timeout_s = session_timeout_s
        self.tick = tick
        self.lock = asyncio.Lock()
        self.refused = Streak(log)
        """Commits refused in a row (a rebalance took the partitions)."""
        self.fenced = Streak(log)
        """Frozen past the session timeout, until a commit succeeds again."""

    async def commit(self, only: Iterable[Any] | None = None) -> float | None:
        """Commit the watermarks (of the partitions in ``only``, when given); the seconds the
        commit took, or None when there was nothing to commit or the group refused it."""
        async with self.lock:
            positions = self.tracker.committable()
            if only is not None:
                keep = set(only)
                positions = {tp: pos for tp, pos in positions.items() if tp in keep}
            if not positions:
                return None
            began = time.perf_counter()
            try:
                await self.consumer.commit(positions)
            except KafkaError as exc:
                self._refused(exc)
                return None
            self.refused.end(None if self.fenced.active else "offset commits succeed again")
            self.fenced.end()
            self.tracker.mark_committed(positions)
            return time.perf_counter() - began

    def _refused(self, exc: KafkaError) -> None:
        # the group moved on (rebalance): the new owner redoes the uncommitted tail, the sink
        # drops the repeats. Said once per streak: a fenced worker retried every 200 ms, 20
        # warnings in 5 s blaming max_poll_interval_ms. After a freeze the commit may run
        # before the stall watch's next tick: ask it first, so the line says why (the freeze)
        self.tick()
        self.refused.hit(
            None
            if self.fenced.active  # ``stalled`` said it, with its cause
            else "offset commit refused (%s): this worker no longer owns those partitions (the "
            "group rebalanced: it was stopped, stalled or cut off); their uncommitted work is "
            "redone by the new owner and the sink drops the repeats",
            type(exc).__name__,
        )

    def stalled(self, seconds: float) -> None:
        """The process was frozen past its session timeout: its partitions have moved."""
        self.fenced.hit(
            "this worker was stopped for %.1f s, past its session timeout (%.0f s): the group "
            "gave its partitions to other workers, so it no longer owns those partitions; the "
            "rollouts it had in flight are redone there and the sink drops the repeats "
            "(nothing is doubled); it rejoins the group now",
            seconds,
            self.session_timeout_s,
        )


class FsyncCommit:
    """Rows on disk first (``append``: write, flush, fsync), then the consumer's position."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    @staticmethod
    def append(handle: IO[bytes], lines: list[bytes]) -> None:
        """Append ``lines`` to ``handle`` and return once they are on disk."""
        handle.write(b"\n".join(lines) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())

    async def commit(self) -> float:
        """Commit the consumer's position; call it only after ``append`` returned for every
        row read. The seconds the commit took."""
        began = time.perf_counter()
        await self.consumer.commit()
        return time.perf_counter() - began


class RecordCommit:
    """A position kept as a record on a (compacted) topic: ``commit`` returns once acked."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def commit(self, key: bytes, value: bytes) -> None:
        """Send ``value`` under ``key`` and wait for the acknowledgement (acks=all)."""
        await self.producer.send_and_wait(self.topic, value, key=key)
