"""Say a run of like events once when it starts and once when it ends, with its length and count.

A broker outage, a model outage, slow model calls, refused commits, failing publishes, a fenced
worker, a class of failed rollouts: each repeats hundreds of times a second while it lasts, and
one line per event buried its cause. A ``Streak`` is that run of events: ``hit`` logs only the
first event of a streak (and counts the rest), ``end`` logs only when a streak was on (its
``elapsed()`` seconds and ``count`` are read before the call, as the line's arguments). Either
message may be None: the state changes silently (someone else said it).

::

    down = Streak(log)
    down.hit("Kafka stopped answering (%s)", exc)          # logged once
    down.end("Kafka answers again after %.1f s", down.elapsed())   # logged once, if it was down

Pure but for the clock and the logger: ``clock`` is injectable, so tests drive time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Streak"]


class Streak:
    """One kind of repeated event, logged at ``level`` on its first ``hit`` and at its ``end``."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.clock = clock
        self.since: float | None = None
        """When the current streak began (this clock); None between streaks."""
        self.count = 0
        """Events in the current streak (0 between streaks)."""
        self.streaks = 0
        """Streaks begun since this object was made."""

    @property
    def active(self) -> bool:
        return self.since is not None

    def elapsed(self) -> float:
        """Seconds since the current streak began (0 between streaks)."""
        return 0.0 if self.since is None else self.clock() - self.since

    def hit(self, msg: str | None = None, *args: object) -> bool:
        """One more event; the first of a streak logs ``msg % args``. True when it began one."""
        self.count += 1
        if self.since is not None:
            return False
        self.since = self.clock()
        self.count = 1
        self.streaks += 1
        if msg is not None:
            self.logger.log(self.level, msg, *args)
        return True

    def end(self, msg: str | None = None, *args: object) -> bool:
        """The streak is over: log ``msg % args`` if one was on. True when one was on."""
        if self.since is None:
            return False
        self.since = None
        self.count = 0
        if msg is not None:
            self.logger.log(self.level, msg, *args)
        return True
