"""A set of a run's rollouts in about one bit each: which are written, which failed.

A rollout of a run is (agent, task index, rollout index) (``wire.keys.rollout_id`` is built from
them), and both indices are small dense integers: task indices count the distinct rows from 0,
rollout indices count a task's repeats from 0 (identical rows continue them). A Python set of
the id strings costs ~250 bytes per rollout (~250 MB per million); ``RolloutSet`` keeps, per
agent, one growable bitmap over task indices per rollout index below ``DENSE_ROLLOUTS`` (with
R repeats: R bitmaps of T bits, rollouts/8 bytes) and, for the rare tasks with more rollouts
than that (many identical rows), one bitmap over their rollout indices per task. The memory is
at most ``DENSE_ROLLOUTS``/8 bytes per task index plus a bit per rollout, whatever the order
the rollouts arrive in. Negative indices (a hand-edited file) go to a plain set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["DENSE_ROLLOUTS", "RolloutSet"]

DENSE_ROLLOUTS = 256
"""Rollout indices below this have a bitmap over task indices each (NeMo Gym repeats: 1-64)."""

Rollout = tuple[str, int, int]


def _has(bits: bytearray, index: int) -> bool:
    byte = index >> 3
    return byte < len(bits) and bool(bits[byte] & (1 << (index & 7)))


def _set(bits: bytearray, index: int) -> None:
    byte = index >> 3
    if byte >= len(bits):  # grow by doubling: amortised O(1), at most 2x the bits needed
        bits.extend(bytes(max(byte + 1, 2 * len(bits)) - len(bits)))
    bits[byte] |= 1 << (index & 7)


def _clear(bits: bytearray, index: int) -> None:
    byte = index >> 3
    if byte < len(bits):
        bits[byte] &= ~(1 << (index & 7)) & 0xFF


def _members(bits: bytearray) -> Iterator[int]:
    for byte, value in enumerate(bits):
        if value:
            for bit in range(8):
                if value & (1 << bit):
                    yield byte * 8 + bit


class _AgentBits:
    __slots__ = ("dense", "sparse")

    def __init__(self) -> None:
        self.dense: list[bytearray] = []  # [rollout index] -> bits over task indices
        self.sparse: dict[int, bytearray] = {}  # task index -> bits over rollout index - DENSE

    def find(self, task: int, rollout: int) -> tuple[bytearray | None, int]:
        """The bitmap that would hold (task, rollout), if there is one, and the bit's index."""
        if rollout < DENSE_ROLLOUTS:
            found = self.dense[rollout] if rollout < len(self.dense) else None
            return found, task
        return self.sparse.get(task), rollout - DENSE_ROLLOUTS

    def make(self, task: int, rollout: int) -> tuple[bytearray, int]:
        """The bitmap that holds (task, rollout), made when missing, and the bit's index."""
        if rollout < DENSE_ROLLOUTS:
            while rollout >= len(self.dense):
                self.dense.append(bytearray())
            return self.dense[rollout], task
        found = self.sparse.get(task)
        if found is None:
            found = self.sparse[task] = bytearray()
        return found, rollout - DENSE_ROLLOUTS

    def nbytes(self) -> int:
        return sum(len(b) for b in self.dense) + sum(len(b) for b in self.sparse.values())


class RolloutSet:
    """A set of (agent, task index, rollout index), about one bit per rollout."""

    def __init__(self, rollouts: Iterable[Rollout] = ()) -> None:
        self._agents: dict[str, _AgentBits] = {}
        self._odd: set[Rollout] = set()  # negative indices: not in a bitmap
        self._len = 0
        for agent, task, rollout in rollouts:
            self.add(agent, task, rollout)

    def __len__(self) -> int:
        return self._len

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 3:
            return False
        agent, task, rollout = item
        if task < 0 or rollout < 0:
            return item in self._odd
        bits = self._agents.get(agent)
        if bits is None:
            return False
        found, index = bits.find(task, rollout)
        return found is not None and _has(found, index)

    def add(self, agent: str, task: int, rollout: int) -> bool:
        """Add the rollout; False when it was already in the set."""
        if (agent, task, rollout) in self:
            return False
        if task < 0 or rollout < 0:
            self._odd.add((agent, task, rollout))
        else:
            bits = self._agents.get(agent) or self._agents.setdefault(agent, _AgentBits())
            _set(*bits.make(task, rollout))
        self._len += 1
        return True

    def discard(self, agent: str, task: int, rollout: int) -> bool:
        """Remove the rollout; False when it was not in the set."""
        if (agent, task, rollout) not in self:
            return False
        if task < 0 or rollout < 0:
            self._odd.discard((agent, task, rollout))
        else:
            _clear(*self._agents[agent].make(task, rollout))
        self._len -= 1
        return True

    def __iter__(self) -> Iterator[Rollout]:
        for agent, bits in self._agents.items():
            for rollout, dense in enumerate(bits.dense):
                for task in _members(dense):
                    yield agent, task, rollout
            for task, sparse in bits.sparse.items():
                for index in _members(sparse):
                    yield agent, task, index + DENSE_ROLLOUTS
        yield from self._odd

    def nbytes(self) -> int:
        """The bitmaps' size in bytes (what the set costs beyond a few objects per agent)."""
        return sum(bits.nbytes() for bits in self._agents.values()) + 100 * len(self._odd)
