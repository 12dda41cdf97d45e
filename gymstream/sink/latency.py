"""Latency percentiles of a run's rollouts in bounded memory: log-bucket histograms per timing.

A run of millions of rollouts must not keep a list of every duration, so each timing of the
results (``ResultMessage.timings``: ``total_s``, ``model_s``, ``tools_s``, ``verify_s``, a remote
agent's ``run_s``) goes into a ``LogHistogram``: buckets whose bounds grow by ``RATIO`` (2%),
from ``MIN_S`` up, at most ``MAX_BUCKETS`` of them, counted in a dict holding only the buckets
seen. A quantile is the geometric middle of the bucket holding that rank (NeMo Gym's linear
interpolation between ranks, on bucket values), clamped to the exact minimum and maximum, so
it is within ``RATIO`` of the exact value. Zeros (no tool call) have their own count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MAX_BUCKETS", "MAX_NAMES", "MIN_S", "RATIO", "LogHistogram", "Timings"]

RATIO = 1.02
MIN_S = 1e-6
MAX_BUCKETS = 2000
"""From 1 µs, 2% apart: the last bucket starts near 1.6e11 s; anything above shares it."""
MAX_NAMES = 16
_LOG_RATIO = math.log(RATIO)


@dataclass
class LogHistogram:
    """Counts of values in log-spaced buckets; ``quantile`` within 2% of the exact one."""

    buckets: dict[int, int] = field(default_factory=dict)
    zeros: int = 0
    count: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = 0.0

    def add(self, value: float) -> None:
        if not value > 0:  # zero, negative (clock skew) or NaN: counted as zero
            value = 0.0
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if value < MIN_S:
            self.zeros += 1
            return
        index = min(MAX_BUCKETS - 1, int(math.log(value / MIN_S) / _LOG_RATIO))
        self.buckets[index] = self.buckets.get(index, 0) + 1

    def _value_at(self, rank: int) -> float:
        """The value of the ``rank``-th smallest (0-based) sample, as its bucket says (the
        smallest and the largest are exact)."""
        if rank <= 0:
            return self.min
        if rank >= self.count - 1:
            return self.max
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if rank < seen:
                middle = MIN_S * math.exp(_LOG_RATIO * (index + 0.5))
                return max(self.min, min(self.max, middle))
        return self.max

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) as NeMo Gym computes it (linear between ranks); None when
        empty."""
        if not self.count:
            return None
        pos = (self.count - 1) * q
        low = int(pos)
        high = min(low + 1, self.count - 1)
        frac = pos - low
        return self._value_at(low) * (1 - frac) + self._value_at(high) * frac


@dataclass
class Timings:
    """One histogram per timing name, filled from each result's ``timings``."""

    by_name: dict[str, LogHistogram] = field(default_factory=dict)

    def add(self, timings: Mapping[str, float]) -> None:
        for name, value in timings.items():
            histogram = self.by_name.get(name)
            if histogram is None:
                if len(self.by_name) >= MAX_NAMES:
                    continue  # bounded whatever a writer puts in its timings
                histogram = self.by_name[name] = LogHistogram()
            histogram.add(value)
