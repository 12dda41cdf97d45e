"""Say when model calls turn slow: once per streak, with how many in the last minute.

A model that hangs without failing (a saturated vLLM, a stuck request answered at its timeout)
made a run 13x slower and logged nothing: no call failed. ``TimedModel`` wraps the worker's
model client and times each call as the agent loop sees it (its retries included);
``SlowCalls`` warns once when ``count`` calls in the last ``window_s`` took longer than
``threshold_s`` (``GYMSTREAM_WORKER_SLOW_MODEL_CALL_S``, ``GYMSTREAM_WORKER_SLOW_MODEL_CALLS``),
and once when a minute has passed without one (a ``stage.streak.Streak``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gymstream.rollout.model.client import ModelClient
from gymstream.stage.streak import Streak

__all__ = ["SlowCalls", "TimedModel"]

log = logging.getLogger("gymstream.worker.slow")

WINDOW_S = 60.0


class SlowCalls:
    """Counts the slow calls of the last ``window_s``; logs the start and end of a streak."""

    def __init__(
        self,
        threshold_s: float,
        count: int,
        *,
        url: str,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold_s = threshold_s
        self.count = count
        self.url = url
        self.window_s = window_s
        self.clock = clock
        self.recent: deque[float] = deque()
        self.streak = Streak(log, clock=clock)

    def record(self, seconds: float) -> None:
        now = self.clock()
        while self.recent and now - self.recent[0] > self.window_s:
            self.recent.popleft()
        if seconds > self.threshold_s:
            self.recent.append(now)
            if len(self.recent) >= self.count:
                self.streak.hit(
                    "model calls slower than %g s: %d in the last minute (%s); the run goes on "
                    "at their pace",
                    self.threshold_s,
                    len(self.recent),
                    self.url,
                )
        elif not self.recent:
            self.streak.end(
                "model calls are under %g s again (none slower for a minute)", self.threshold_s
            )

    @property
    def slow(self) -> bool:
        """Whether a streak of slow calls is on."""
        return self.streak.active

    @property
    def streaks(self) -> int:
        return self.streak.streaks


class TimedModel:
    """A ``ModelClient`` that reports each call's duration to ``SlowCalls``."""

    def __init__(self, inner: ModelClient, slow: SlowCalls) -> None:
        self.inner = inner
        self.slow = slow

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        try:
            return await self.inner.create(params)
        finally:
            self.slow.record(time.monotonic() - started)
