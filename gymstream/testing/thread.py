"""Run a scripted model server on its own event loop in a daemon thread, for synchronous code.

The demo and the synchronous tests use it; inside an event loop use ``server.serve_scripted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

from gymstream.testing.server import LogprobsMode, ScriptedServer, serve_scripted

__all__ = ["ScriptedThread", "start_scripted_in_thread"]


class ScriptedThread:
    """A scripted server running on its own event loop in a daemon thread.

    ``url``/``port``/``server`` are valid once ``start_scripted_in_thread`` returns; ``stop()``
    closes the server and joins the thread. Also a context manager.
    """

    def __init__(
        self, server: ScriptedServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread
    ) -> None:
        self.server = server
        self._loop = loop
        self._thread = thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server and its loop; waits up to ``timeout_s`` for the thread to end."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)

    def __enter__(self) -> ScriptedThread:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_scripted_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    hang_rate: float = 0.0,
    seed: int = 0,
    latency_jitter_ms: float = 0.0,
    *,
    ready_timeout_s: float = 10.0,
    logprobs: LogprobsMode = "asked",
) -> ScriptedThread:
    """Run a scripted server in a background thread; returns once it listens.

    Raises what starting raised (``ValueError``, ``OSError``), or ``TimeoutError`` when it is not
    listening within ``ready_timeout_s``.
    """
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    started: list[ScriptedServer] = []
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(
                serve_scripted(
                    host, port, latency_ms, error_rate, hang_rate, seed, latency_jitter_ms, logprobs
                )
            )
        except BaseException as exc:  # handed to the starting thread, which re-raises it
            failure.append(exc)
            ready.set()
            loop.close()
            return
        started.append(server)
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.run_until_complete(server.wait_closed())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name="gymstream-scripted-model", daemon=True)
    thread.start()
    if not ready.wait(ready_timeout_s):
        raise TimeoutError(f"scripted model server did not start within {ready_timeout_s}s")
    if failure:
        raise failure[0]
    return ScriptedThread(started[0], loop, thread)
