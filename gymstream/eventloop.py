"""Which asyncio event loop gymstream's processes run on.

The choice (``GYMSTREAM_EVENT_LOOP``, read by ``settings.EventLoopSettings`` at the boundary and
passed in): ``auto`` (default: uvloop when it is installed, else asyncio's own),
``uvloop`` (fail if it is missing) or ``asyncio``. uvloop's loop and transports are written in
Cython on libuv; a worker spends most of its CPU in the loop's socket and callback machinery, and
uvloop cuts that (docs/performance.md has the figures). It is not available on Windows, where
``auto`` falls back to asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from gymstream.errors import ConfigError

__all__ = ["ENV_VAR", "Periodic", "loop_factory", "loop_name", "run"]

ENV_VAR = "GYMSTREAM_EVENT_LOOP"
T = TypeVar("T")


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for new loops; None means asyncio's default. ConfigError for a bad choice."""
    choice = choice.strip().lower() or "auto"
    if choice == "asyncio":
        return None
    if choice not in ("auto", "uvloop"):
        raise ConfigError(f"{ENV_VAR}={choice!r}: choose auto, uvloop or asyncio")
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                f"{ENV_VAR}=uvloop but uvloop is not installed: pip install uvloop, "
                f"or set {ENV_VAR}=asyncio"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(choice: str = "auto") -> str:
    """``uvloop`` or ``asyncio``: what ``run`` would use for ``choice``."""
    return "asyncio" if loop_factory(choice) is None else "uvloop"


def run(coro: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run`` on the chosen loop (``auto``, ``uvloop`` or ``asyncio``)."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(coro)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop``: the command winds down cleanly instead of dying."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


class Periodic:
    """Await ``step()`` every ``interval_s`` on the running loop, from ``start()`` to ``stop()``.

    The background ticker of the watches (stage/broker.py, stage/stall.py): one place that
    starts the task and cancels it cleanly."""

    def __init__(self, interval_s: float, step: Callable[[], Awaitable[object]]) -> None:
        self.interval_s = interval_s
        self.step = step
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.step()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
