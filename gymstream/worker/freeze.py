"""When this process was last frozen past its session timeout: what a rollout's deadline asks.

Why: a worker SIGSTOPped (or suspended) past its session timeout has lost its partitions; when
it runs again, the monotonic clock has jumped, every rollout it had in flight is past its
deadline at once, and it used to publish a ``rollout_deadline`` failure for each. Those
failures were not the rollouts' outcomes (nothing ran while the process was stopped) and the
partitions' new owner runs the same rollouts: a stale failure could stand for one of them
(1 run in 2 of the fault campaign ended 399 successes + 1 failure).

So a deadline that fires across a freeze is not a failure: the runner asks ``since(started)``
and, when a freeze ended after the attempt began, runs the rollout again instead of failing it.
If the partition was indeed revoked meanwhile, the rebalance cancels that attempt and nothing
is published; if this worker kept (or got back) the partition, it publishes the real outcome.
Either way the worst case is a duplicate success, which the sink drops; never a stale failure.
``check`` is the stall watch's tick, asked first: after a thaw the deadline's timer may run
before the watch's next tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Freezes"]


class Freezes:
    """The end of the last freeze the stall watch found (``record``), for ``since``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.last_end = float("-inf")
        self.check: Callable[[], None] = lambda: None

    def record(self, seconds: float) -> None:
        """The stall watch found a freeze of ``seconds`` that ended now."""
        del seconds  # the length is the watch's line; what counts here is when it ended
        self.last_end = self._clock()

    def since(self, started: float) -> bool:
        """Whether a freeze ended after ``started`` (this clock), the watch asked first."""
        self.check()
        return self.last_end > started

    def now(self) -> float:
        return self._clock()
