"""Notice that this process was frozen (SIGSTOP, a suspended VM, swap) longer than a limit.

A worker stopped past its group session timeout has lost its partitions to other workers when
it runs again, whatever it believes; aiokafka finds out at its next heartbeat and rejoins,
quietly or through refused commits. ``StallWatch`` ticks every ``tick_s`` on the event loop and
calls ``on_stall(seconds)`` once per freeze when the gap between two ticks (the monotonic clock
runs on while a process is stopped) exceeds ``limit_s``, so the worker can say so in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

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
        self._task: asyncio.Task[None] | None = None

    def tick(self) -> None:
        """Compare the clock with the last tick; call ``on_stall`` after a long gap."""
        now = self.clock()
        gap = now - self.last
        self.last = now
        if gap > self.limit_s:
            self.on_stall(gap)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.tick()

    def start(self) -> None:
        self.last = self.clock()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
