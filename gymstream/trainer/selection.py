"""What a trainer receives: filters (staleness, zero variance, ...), per-agent mixing, counts.

Pure (no Kafka), used by ``delivery.py``. ``drop_reason`` says why a finished unit is not to be
delivered (or None). The mixer holds finished units per agent and hands them
out so that the delivered mix follows the weights; ``StreamStats`` reports the realised mix and
every unit dropped, by reason.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gymstream.errors import ConfigError
from gymstream.trainer.grouping import Group
from gymstream.trainer.options import StreamOptions

__all__ = ["Mixer", "StreamStats", "drop_reason", "is_stale", "is_zero_variance"]


def is_zero_variance(group: Group) -> bool:
    """Every reward equal (exactly): GRPO advantages would all be 0. Never true for one rollout."""
    rewards = group.rewards
    return len(rewards) > 1 and all(r == rewards[0] for r in rewards)


def is_stale(group: Group, options: StreamOptions, current_version: int | None) -> bool:
    """More than ``max_staleness`` versions behind ``current_version``, and to be dropped
    (``on_stale="drop"``). A rollout without a version is never stale."""
    limit = options.max_staleness
    if limit is None or options.on_stale == "keep":
        return False
    staleness = group.staleness(current_version)
    return staleness is not None and staleness > limit


def drop_reason(
    group: Group, options: StreamOptions, mixer: Mixer, current_version: int | None
) -> str | None:
    """Why a unit that just finished is dropped (a ``StreamStats.dropped`` reason), or None."""
    if group.failed and (
        options.incomplete == "drop" or (not group.rollouts and not options.deliver_failed)
    ):
        return "incomplete"
    if options.drop_zero_variance and is_zero_variance(group):
        return "zero_variance"
    if not mixer.accepts(group.agent):
        return "unweighted"
    if is_stale(group, options, current_version):
        return "stale"
    return None


@dataclass
class StreamStats:
    """Counts of one stream session (they restart at zero when the stream is opened again).

    ``dropped`` reasons: ``stale`` (older than ``max_staleness``), ``zero_variance``,
    ``incomplete`` (a rollout failed), ``unweighted`` (agent absent from the mixing weights or
    weighted 0). ``staleness`` is a histogram of delivered rollouts by staleness (policy versions
    behind the trainer's at hand-out), ``unknown`` counting those without a version.
    """

    delivered: Counter[str] = field(default_factory=Counter)
    delivered_rollouts: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_by_agent: Counter[str] = field(default_factory=Counter)
    staleness: Counter[int] = field(default_factory=Counter)
    unknown_staleness: int = 0
    duplicates: int = 0
    closed_skipped: int = 0
    acknowledged: int = 0

    @property
    def delivered_total(self) -> int:
        return sum(self.delivered.values())

    def mix(self) -> dict[str, float]:
        """Realised share of delivered units per agent (sums to 1 when anything was delivered)."""
        total = self.delivered_total
        return {a: n / total for a, n in sorted(self.delivered.items())} if total else {}

    def record_delivery(self, group: Group, current_version: int | None) -> None:
        self.delivered[group.agent] += 1
        self.delivered_rollouts += len(group.rollouts)
        for version in group.policy_versions:
            if version is None or current_version is None:
                self.unknown_staleness += 1
            else:
                self.staleness[current_version - version] += 1

    def record_drop(self, group: Group, reason: str) -> None:
        self.dropped[reason] += 1
        self.dropped_by_agent[group.agent] += 1

    @classmethod
    def total(cls, parts: Iterable[StreamStats]) -> StreamStats:
        """The sum of several streams' counts (a stream over several runs)."""
        out = cls()
        for part in parts:
            for name, value in vars(part).items():
                setattr(out, name, getattr(out, name) + value)
        return out

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "delivered": dict(sorted(self.delivered.items())),
            "delivered_rollouts": self.delivered_rollouts,
            "mix": self.mix(),
            "dropped": dict(sorted(self.dropped.items())),
            "staleness": {str(k): v for k, v in sorted(self.staleness.items())},
            "unknown_staleness": self.unknown_staleness,
            "duplicates": self.duplicates,
            "closed_skipped": self.closed_skipped,
            "acknowledged": self.acknowledged,
        }


class Mixer:
    """Hold finished units per agent; hand them out in proportion to per-agent weights.

    Without weights it is a FIFO. With weights, ``pop`` serves the agent furthest behind its
    share (``weight * (delivered + 1) - delivered_agent``, weights normalised); when that agent
    has nothing held, it waits for one (returns None) unless ``flush`` is set, ``max_held`` units
    are held, or the agent is in ``exhausted`` (it will get no more), and then serves the agent
    furthest behind among those with something held. The caller reports each unit it actually
    delivers with ``served`` (a popped unit may still be dropped, e.g. as stale). Memory: at most
    ``max_held`` units plus what the caller pushes before it next pops.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, max_held: int = 256) -> None:
        if max_held < 1:
            raise ConfigError(f"max_held must be at least 1, not {max_held}")
        self.max_held = max_held
        self._weights: dict[str, float] | None = None
        if weights is not None:
            bad = {a: w for a, w in weights.items() if w < 0}
            if bad or not any(w > 0 for w in weights.values()):
                raise ConfigError(
                    f"mixing weights must be >= 0 with at least one > 0, got {dict(weights)}"
                )
            total = sum(weights.values())
            self._weights = {a: w / total for a, w in weights.items() if w > 0}
        self._fifo: deque[Group] = deque()
        self._held: dict[str, deque[Group]] = {}
        self._served: Counter[str] = Counter()
        self._count: Counter[str] = Counter()

    def __len__(self) -> int:
        if self._weights is None:
            return len(self._fifo)
        return sum(len(q) for q in self._held.values())

    def held(self, agent: str) -> int:
        """Units of ``agent`` held now."""
        return self._count[agent]

    def accepts(self, agent: str) -> bool:
        """False for an agent the weights leave out: its units are to be dropped."""
        return self._weights is None or agent in self._weights

    def push(self, group: Group) -> None:
        if self._weights is None:
            self._fifo.append(group)
        elif group.agent not in self._weights:
            raise ConfigError(f"agent '{group.agent}' has no mixing weight")
        else:
            self._held.setdefault(group.agent, deque()).append(group)
        self._count[group.agent] += 1

    def pop(self, *, flush: bool = False, exhausted: Collection[str] = ()) -> Group | None:
        group = self._pick(flush, exhausted)
        if group is not None:
            self._count[group.agent] -= 1
        return group

    def _pick(self, flush: bool, exhausted: Collection[str]) -> Group | None:
        if self._weights is None:
            return self._fifo.popleft() if self._fifo else None
        total = sum(self._served.values())
        # agents that may still be served: something held, or more may come
        candidates = [a for a in sorted(self._weights) if self._held.get(a) or a not in exhausted]
        if not candidates:
            return None
        best = max(candidates, key=lambda a: self._deficit(a, total))
        if not self._held.get(best):
            ready = [a for a in candidates if self._held.get(a)]
            if not ready or not (flush or len(self) >= self.max_held):
                return None
            best = max(ready, key=lambda a: self._deficit(a, total))
        return self._held[best].popleft()

    def served(self, agent: str) -> None:
        """Count one unit of ``agent`` as delivered (the caller may still drop what it popped)."""
        self._served[agent] += 1

    def _deficit(self, agent: str, total: int) -> float:
        weights = self._weights or {}
        return weights.get(agent, 0.0) * (total + 1) - self._served[agent]
