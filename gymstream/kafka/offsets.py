"""Track which consumed offsets are done per partition, and what is safe to commit.

A worker runs many messages at once and they finish out of order. A partition's committable
position is where a restarted consumer must resume so that no message is lost: the lowest
offset still in flight, or, with nothing in flight, the highest done offset + 1. Offsets are
started in increasing order but need not be contiguous (compaction and transaction markers
leave gaps); offsets never started count as nothing to do.

Not thread-safe: meant for one asyncio event loop. Every operation is amortised O(1), except
``committable`` and ``revoke``, which are O(partitions returned).

Typical use::

    tracker.start(tp, msg.offset)          # when a message is taken into work
    ...                                    # its output is acknowledged by Kafka
    tracker.done(tp, msg.offset)
    positions = tracker.committable()
    if positions:
        await consumer.commit(positions)
        tracker.mark_committed(positions)

On a rebalance, ``revoke`` the lost partitions and commit what it returns. Work still in
flight for them is abandoned: ``done`` for those offsets raises, so check ``tp in tracker``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

__all__ = ["OffsetTracker"]

TP = TypeVar("TP", bound=Hashable)


class _Partition:
    """One partition's offsets: started in order, in flight, and the positions reached."""

    __slots__ = ("committed", "completed", "first", "in_flight", "last_started", "started")

    def __init__(self) -> None:
        self.started: deque[int] = deque()  # started offsets not yet passed, increasing
        self.in_flight: set[int] = set()  # started and not done
        self.last_started = -1
        self.completed: int | None = None  # highest offset passed + 1; None before the first
        self.committed: int | None = None
        self.first: int | None = None  # the first offset started since the partition was taken

    def position(self) -> int | None:
        """Where a consumer may resume, or None while the first started offset is unfinished."""
        if self.completed is None:
            return None
        return self.started[0] if self.started else self.completed

    def advanced(self) -> bool:
        position = self.position()
        return position is not None and (self.committed is None or position > self.committed)


class OffsetTracker(Generic[TP]):
    """Per-partition offsets in flight, and the positions safe to commit.

    ``TP`` is any hashable partition key, e.g. aiokafka's ``TopicPartition``. Positions are
    Kafka commit positions: the offset of the next message to read.
    """

    def __init__(self) -> None:
        self._partitions: dict[TP, _Partition] = {}
        self._advanced: set[TP] = set()  # partitions whose position is past the committed one
        self._in_flight = 0

    def __contains__(self, tp: object) -> bool:
        """Whether ``tp`` is tracked (started since it was last revoked)."""
        return tp in self._partitions

    def start(self, tp: TP, offset: int) -> None:
        """Record that the message at ``offset`` was taken into work.

        Raises ``ValueError`` if ``offset`` is not above every offset started before on ``tp``
        (a consumer that seeks back must ``revoke`` the partition first).
        """
        part = self._partitions.get(tp)
        if part is None:
            part = self._partitions[tp] = _Partition()
            part.first = offset
        if offset <= part.last_started:
            raise ValueError(
                f"{tp}: offset {offset} started after offset {part.last_started}; offsets must "
                "be started in increasing order (revoke the partition before seeking back)"
            )
        part.last_started = offset
        part.started.append(offset)
        part.in_flight.add(offset)
        self._in_flight += 1
        # A new head in flight moves the position past a gap (e.g. done 5, then start 9 -> 9).
        if len(part.started) == 1:
            self._update_advanced(tp, part)

    def done(self, tp: TP, offset: int) -> None:
        """Record that the message at ``offset`` is finished and its output acknowledged.

        Raises ``ValueError`` if that offset is not in flight on ``tp``: never started, done
        twice, or its partition revoked since. That is a bug in the caller.
        """
        part = self._partitions.get(tp)
        if part is None or offset not in part.in_flight:
            state = "is not tracked" if part is None else f"has no offset {offset} in flight"
            raise ValueError(f"{tp}: done({offset}) but the partition {state}")
        part.in_flight.remove(offset)
        self._in_flight -= 1
        started = part.started
        if started[0] != offset:
            return
        while started and started[0] not in part.in_flight:
            part.completed = started.popleft() + 1
        self._update_advanced(tp, part)

    def committable(self) -> dict[TP, int]:
        """Positions to commit: per partition whose position advanced since it was last marked.

        A position is the lowest offset in flight, or the highest done offset + 1 with
        nothing in flight. Partitions whose first started offset is unfinished are left out.
        """
        positions: dict[TP, int] = {}
        for tp in self._advanced:
            position = self._partitions[tp].position()
            if position is not None:  # always so: only advanced partitions are in the set
                positions[tp] = position
        return positions

    def mark_committed(self, positions: Mapping[TP, int]) -> None:
        """Record positions the consumer committed; partitions no longer tracked are ignored.

        A position below one marked before is ignored (commits can complete out of order).
        """
        for tp, position in positions.items():
            part = self._partitions.get(tp)
            if part is None:
                continue
            if part.committed is None or position > part.committed:
                part.committed = position
            self._update_advanced(tp, part)

    def in_flight(self, tp: TP | None = None) -> int:
        """Offsets started and not done, on ``tp`` or (``None``) on every partition."""
        if tp is None:
            return self._in_flight
        part = self._partitions.get(tp)
        return 0 if part is None else len(part.in_flight)

    def committed(self, tp: TP) -> int | None:
        """The position last marked committed on ``tp``; before the first mark, the first offset
        started on it (where its group's committed position was); None if ``tp`` is untracked."""
        part = self._partitions.get(tp)
        if part is None:
            return None
        return part.first if part.committed is None else part.committed

    def revoke(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Forget ``tps`` (a rebalance took them) and return their final positions to commit.

        Only positions that advanced past the last mark are returned, as in ``committable``;
        commit them before letting the partitions go. Untracked partitions are ignored.
        """
        final: dict[TP, int] = {}
        for tp in tps:
            part = self._partitions.pop(tp, None)
            if part is None:
                continue
            self._in_flight -= len(part.in_flight)
            self._advanced.discard(tp)
            position = part.position()
            if position is not None and part.advanced():
                final[tp] = position
        return final

    def _update_advanced(self, tp: TP, part: _Partition) -> None:
        if part.advanced():
            self._advanced.add(tp)
        else:
            self._advanced.discard(tp)
