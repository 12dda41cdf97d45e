"""Assemble a run's results into GRPO groups and track what a restart must read again.

Pure (no Kafka), used by ``stream.py``. A *unit* is what the trainer receives: a group (every
rollout of one task, ``group_size`` of them) or, in rollout mode, one rollout. Each unit is, in
turn, *live* (being assembled, complete but not yet handed, or handed and not yet acknowledged)
or *closed* (acknowledged by the trainer, or dropped by a filter and counted).

Two facts make an exact resume possible:

- the watermark: per topic partition, the lowest offset of any message of a live unit (or the
  next offset to read when nothing is live there). Re-reading from the watermarks sees every
  message of every live unit again;
- the closed set: which units are closed, kept as ranges of task indices per agent (units close
  roughly in task order, so the ranges stay few: about one per unit still live below the
  highest closed index). Re-reading skips closed units, including late duplicates of them.

Memory: the live units, plus the ranges.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from gymstream.errors import ConfigError
from gymstream.nemo_gym.rows.rollouts import DEFAULT_REPEATS_KEY
from gymstream.wire.keys import task_key
from gymstream.wire.messages import FailureMessage, ResultMessage
from gymstream.wire.records import ALL_ROLLOUTS, ClosedRanges

__all__ = [
    "Assembler",
    "ClosedSet",
    "Group",
    "IntervalSet",
    "UnitKey",
]

TP = tuple[str, int]
"""A topic partition (aiokafka's ``TopicPartition`` is a named tuple of the same shape)."""

"""``UnitKey.rollout_index`` of a whole group."""


class UnitKey(NamedTuple):
    """A unit's identity in its run: a group (``rollout_index == -1``) or one rollout."""

    agent: str
    task_index: int
    rollout_index: int = ALL_ROLLOUTS


@dataclass(frozen=True, slots=True)
class Group:
    """What the trainer receives: the rollouts of one task (all of them, or one in rollout mode).

    ``rollouts`` are sorted by rollout index. ``failed`` names rollout indices that ended in a
    failure (only non-empty for groups the stream was told to deliver partially: by default an
    incomplete group is dropped and counted, never delivered).
    """

    run_id: str
    agent: str
    task_index: int
    rollouts: tuple[ResultMessage, ...]
    failed: tuple[int, ...] = ()
    rollout_index: int = ALL_ROLLOUTS
    failures: tuple[FailureMessage, ...] = ()
    """The failure messages of the ``failed`` rollouts, in the same order."""

    @property
    def key(self) -> UnitKey:
        return UnitKey(self.agent, self.task_index, self.rollout_index)

    @property
    def id(self) -> str:
        """``run/agent/task`` (the results topic's key), or the rollout id in rollout mode."""
        base = task_key(self.run_id, self.agent, self.task_index)
        return base if self.rollout_index == ALL_ROLLOUTS else f"{base}/{self.rollout_index}"

    @property
    def rewards(self) -> list[float]:
        return [r.reward for r in self.rollouts]

    @property
    def policy_versions(self) -> list[int | None]:
        return [r.policy_version for r in self.rollouts]

    def rows(self) -> list[dict[str, Any]]:
        """The NeMo Gym output rows, decoded (the stream itself never decodes them)."""
        return [msgspec.json.decode(r.output) for r in self.rollouts]

    def staleness(self, current_version: int | None) -> int | None:
        """Versions between the oldest rollout's policy and ``current_version``.

        ``None`` when the current version or every rollout's version is unknown; rollouts with
        no version are ignored.
        """
        versions = [v for v in self.policy_versions if v is not None]
        if current_version is None or not versions:
            return None
        return current_version - min(versions)


class IntervalSet:
    """A set of non-negative ints kept as sorted, disjoint, half-open ranges ``[start, end)``."""

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value < self._ends[i]

    def __len__(self) -> int:
        """How many ints are in the set (not how many ranges)."""
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    @property
    def ranges(self) -> int:
        return len(self._starts)

    def add(self, value: int) -> bool:
        """Add ``value``; False when it was already there."""
        i = bisect.bisect_right(self._starts, value) - 1
        if i >= 0 and value < self._ends[i]:
            return False
        joins_left = i >= 0 and self._ends[i] == value
        joins_right = i + 1 < len(self._starts) and self._starts[i + 1] == value + 1
        if joins_left and joins_right:
            self._ends[i] = self._ends[i + 1]
            del self._starts[i + 1], self._ends[i + 1]
        elif joins_left:
            self._ends[i] = value + 1
        elif joins_right:
            self._starts[i + 1] = value
        else:
            self._starts.insert(i + 1, value)
            self._ends.insert(i + 1, value + 1)
        return True

    def to_flat(self) -> list[int]:
        """``[start0, end0, start1, end1, ...]``: the wire form."""
        return [x for pair in zip(self._starts, self._ends, strict=True) for x in pair]

    @classmethod
    def from_flat(cls, flat: Iterable[int]) -> IntervalSet:
        out = cls()
        values = list(flat)
        if len(values) % 2:
            raise ValueError("interval list has an odd number of bounds")
        for start, end in zip(values[::2], values[1::2], strict=True):
            if end <= start or (out._ends and start <= out._ends[-1]):
                raise ValueError(f"interval [{start}, {end}) is empty, unsorted or overlapping")
            out._starts.append(start)
            out._ends.append(end)
        return out


class ClosedSet:
    """Which units of a run are closed: per (agent, rollout index) an ``IntervalSet`` of tasks."""

    __slots__ = ("_sets",)

    def __init__(self) -> None:
        self._sets: dict[tuple[str, int], IntervalSet] = {}

    def __contains__(self, key: UnitKey) -> bool:
        found = self._sets.get((key.agent, key.rollout_index))
        return found is not None and key.task_index in found

    def add(self, key: UnitKey) -> bool:
        """Close ``key``; False when it was closed already."""
        found = self._sets.setdefault((key.agent, key.rollout_index), IntervalSet())
        return found.add(key.task_index)

    def count(self, agent: str | None = None) -> int:
        """Closed units, of one agent or of all."""
        return sum(len(s) for (a, _), s in self._sets.items() if agent is None or a == agent)

    @property
    def ranges(self) -> int:
        return sum(s.ranges for s in self._sets.values())

    def to_wire(self) -> list[ClosedRanges]:
        return [
            ClosedRanges(agent=agent, rollout_index=index, tasks=s.to_flat())
            for (agent, index), s in sorted(self._sets.items())
        ]

    @classmethod
    def from_wire(cls, ranges: Iterable[ClosedRanges]) -> ClosedSet:
        out = cls()
        for item in ranges:
            out._sets[(item.agent, item.rollout_index)] = IntervalSet.from_flat(item.tasks)
        return out


@dataclass(slots=True)
class _Live:
    """A unit not yet closed: where its messages are, and what arrived so far."""

    first: dict[TP, int] = field(default_factory=dict)
    results: dict[int, ResultMessage] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    failures: dict[int, FailureMessage] = field(default_factory=dict)
    finished: bool = False  # complete, or every rollout accounted for with some failed


@dataclass
class AssemblyCounts:
    """What the assembler skipped: repeats of a rollout, and messages of closed units."""

    duplicates: int = 0
    closed_skipped: int = 0
    other_runs: int = 0


class Assembler:
    """Collects results (and failures) into units and knows the watermarks and closed set.

    ``add_result`` / ``add_failure`` return a unit when it becomes finished (every rollout
    arrived, or every rollout is either arrived or failed), at most once per unit. The group
    size is ``group_size`` for every agent, or, when it is None, each agent's size in
    ``sizes`` (the run's manifest's ``repeats``). The caller
    decides what happens to it and calls ``close`` when the trainer acknowledged it or a filter
    dropped it. Offsets must be fed in increasing order per partition; messages of other runs
    only move the watermark.
    """

    def __init__(
        self,
        run_id: str,
        group_size: int | None,
        *,
        per_rollout: bool = False,
        closed: ClosedSet | None = None,
    ) -> None:
        if group_size is not None and group_size < 1:
            raise ConfigError(f"group size must be at least 1, not {group_size}")
        self.run_id = run_id
        self.group_size = group_size
        self.sizes: Mapping[str, int] = {}
        self.per_rollout = per_rollout
        self.closed = closed or ClosedSet()
        self.counts = AssemblyCounts()
        self._live: dict[UnitKey, _Live] = {}
        self._next: dict[TP, int] = {}

    def size_of(self, agent: str) -> int | None:
        """The group size of ``agent``'s tasks; None while unknown."""
        if self.group_size is not None:
            return self.group_size
        return self.sizes.get(agent, self.sizes.get(DEFAULT_REPEATS_KEY))

    def unit_size(self, agent: str) -> int:
        """Rollouts per unit of ``agent``: its group size, or 1 in rollout mode."""
        return 1 if self.per_rollout else self._group_size(agent)

    def _group_size(self, agent: str) -> int:
        size = self.size_of(agent)
        if size is None:
            raise ConfigError(f"run {self.run_id}: no group size known for agent '{agent}'")
        return size

    def __len__(self) -> int:
        """Live units (assembling, ready, or handed and not acknowledged)."""
        return len(self._live)

    def live_keys(self) -> Iterator[UnitKey]:
        return iter(self._live)

    def seek(self, tp: TP, offset: int) -> None:
        """The next offset to be read from ``tp`` (after a seek, before any message)."""
        self._next[tp] = offset

    def add_result(self, tp: TP, offset: int, result: ResultMessage) -> Group | None:
        self._next[tp] = offset + 1
        if result.run_id != self.run_id:
            self.counts.other_runs += 1
            return None
        size = None if self.per_rollout else self._group_size(result.agent)
        if size is not None and not 0 <= result.rollout_index < size:
            raise ConfigError(
                f"rollout {result.rollout_id} has rollout index {result.rollout_index}, outside "
                f"a group of size {size} ({tp[0]}/{tp[1]}/{offset}): set the group "
                "size to the run's number of repeats"
            )
        key = self._key(result.agent, result.task_index, result)
        live = self._take(tp, offset, key)
        if live is None:
            return None
        if result.rollout_index in live.results:
            self.counts.duplicates += 1
            return None
        live.results[result.rollout_index] = result
        live.failed.discard(result.rollout_index)
        live.failures.pop(result.rollout_index, None)
        return self._finish_if_done(live, key)

    def add_failure(self, tp: TP, offset: int, failure: FailureMessage) -> Group | None:
        """A rollout failed (terminally or not: a later attempt comes, if at all, as a new task;
        like the sink, the stream counts the failure as the rollout's outcome)."""
        self._next[tp] = offset + 1
        if failure.run_id != self.run_id or failure.rollout_index < 0:
            self.counts.other_runs += 1
            return None
        key = self._key(failure.agent, failure.task_index, failure)
        size = None if self.per_rollout else self._group_size(failure.agent)
        if size is not None and failure.rollout_index >= size:
            raise ConfigError(
                f"failure of {failure.rollout_id} has rollout index {failure.rollout_index}, "
                f"outside a group of size {size}: set the group size to the run's "
                "number of repeats"
            )
        live = self._take(tp, offset, key)
        if live is None:
            return None
        if failure.rollout_index in live.results or failure.rollout_index in live.failed:
            self.counts.duplicates += 1
            return None
        live.failed.add(failure.rollout_index)
        live.failures[failure.rollout_index] = failure
        return self._finish_if_done(live, key)

    def close(self, key: UnitKey) -> None:
        """The unit is acknowledged or dropped: forget it, remember it as closed."""
        self._live.pop(key, None)
        self.closed.add(key)

    def watermarks(self) -> dict[TP, int]:
        """Per partition seen: where a restart must read again from (see the module doc)."""
        marks = dict(self._next)
        for live in self._live.values():
            for tp, offset in live.first.items():
                if offset < marks.get(tp, offset + 1):
                    marks[tp] = offset
        return marks

    def _key(self, agent: str, task_index: int, msg: ResultMessage | FailureMessage) -> UnitKey:
        return UnitKey(agent, task_index, msg.rollout_index if self.per_rollout else ALL_ROLLOUTS)

    def _take(self, tp: TP, offset: int, key: UnitKey) -> _Live | None:
        """The live unit for ``key`` with this message's offset noted; None if it is closed."""
        if key in self.closed:
            self.counts.closed_skipped += 1
            return None
        live = self._live.get(key)
        if live is None:
            live = self._live[key] = _Live()
        elif live.finished:
            self.counts.duplicates += 1
            return None
        live.first.setdefault(tp, offset)
        return live

    def _finish_if_done(self, live: _Live, key: UnitKey) -> Group | None:
        if len(live.results) + len(live.failed) < self.unit_size(key.agent):
            return None
        live.finished = True
        return Group(
            run_id=self.run_id,
            agent=key.agent,
            task_index=key.task_index,
            rollouts=tuple(live.results[i] for i in sorted(live.results)),
            failed=tuple(sorted(live.failed)),
            rollout_index=key.rollout_index,
            failures=tuple(live.failures[i] for i in sorted(live.failed)),
        )


def expected_units(
    expected: Mapping[str, int], unit_size: int | Callable[[str], int]
) -> dict[str, int]:
    """Units per agent from a manifest's expected rollouts and the unit size (one for every
    agent, or per agent); ConfigError if they do not divide."""
    out: dict[str, int] = {}
    for agent, rollouts in expected.items():
        size = unit_size if isinstance(unit_size, int) else unit_size(agent)
        units, rest = divmod(rollouts, size)
        if rest:
            raise ConfigError(
                f"the run expects {rollouts} rollouts for agent '{agent}', not a multiple of the "
                f"group size {size}: set the group size to the run's number of repeats"
            )
        out[agent] = units
    return out
