"""Notice that this process was frozen (SIGSTOP, a suspended VM, swap) longer than a limit.

A worker stopped past its group session timeout has lost its partitions to other workers when
it runs again, whatever it believes; aiokafka finds out at its next heartbeat and rejoins,
quietly or through refused commits. ``StallWatch`` ticks every ``tick_s`` on the event loop and
calls ``on_stall(seconds)`` once per freeze when the gap between two ticks (the monotonic clock
runs on while a process is stopped) exceeds ``limit_s``, so the stage can say so in one line
(``commit.WatermarkCommit.fenced``, a ``Streak``). Started by ``runtime.Stage.watch_stall``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gymstream.eventloop import Periodic

__all__ = ["StallWatch"]


class StallWatch:
    def __init__(
        self,
        limit_s: float,
        on_stall: Callable[[float], None],
        *,
        tick_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_s = limit_s
        self.on_stall = on_stall
        self.tick_s = tick_s
        self.clock = clock
        self.last = clock()
        self._ticker = Periodic(tick_s, self._tick)

    def tick(self) -> None:
        """Compare the clock with the last tick; call ``on_stall`` after a long gap."""
        now = self.clock()
        gap = now - self.last
        self.last = now
        if gap > self.limit_s:
            self.on_stall(gap)

    async def _tick(self) -> None:
        self.tick()

    def start(self) -> None:
        self.last = self.clock()
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
