"""Which asyncio event loop gymstream's processes run on.

``GYMSTREAM_EVENT_LOOP``: ``auto`` (default: uvloop when it is installed, else asyncio's own),
``uvloop`` (fail if it is missing) or ``asyncio``. uvloop's loop and transports are written in
Cython on libuv; a worker spends most of its CPU in the loop's socket and callback machinery, and
uvloop cuts that (docs/performance.md has the figures). It is not available on Windows, where
``auto`` falls back to asyncio.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gymstream.errors import ConfigError

__all__ = ["ENV_VAR", "loop_factory", "loop_name", "run"]

ENV_VAR = "GYMSTREAM_EVENT_LOOP"
T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for new loops; None means asyncio's default."""
    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
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


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: what ``run`` would use now."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop``: the command winds down cleanly instead of dying."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
