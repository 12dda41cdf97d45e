"""A scripted, OpenAI-compatible model server: a fast test double for demo, tests and benchmarks.

It is a real HTTP/1.1 server (asyncio protocol, keep-alive, Content-Length bodies; no extra
dependency) serving ``POST /v1/responses``, ``POST /v1/chat/completions`` and ``GET /v1/models``
(the ``/v1`` prefix is optional). Answers come from ``gymstream.testing.scripted_policy``: a
deterministic policy that plays the example environments. Fault injection for resilience tests:

- ``latency_ms``: every answer is sent that long after its request arrived (a loop timer, so
  connections stay concurrent and the server's own work counts inside the latency);
  ``latency_jitter_ms`` J spreads that wait uniformly over [latency - J, latency + J] (same mean),
  as a real model's latency varies: with a fixed wait, C concurrent rollouts get their answers
  in lockstep bursts of C, a worst case no real endpoint produces;
- ``error_rate``: that fraction of model requests get HTTP 500 or 503;
- ``hang_rate``: that fraction never get an answer (the server waits ``HANG_S``, past any sane
  client timeout, or until the client hangs up).
The fault draws come from ``random.Random(seed)`` in request-arrival order.

Use ``await serve_scripted(...)`` inside an event loop, ``start_scripted_in_thread(...)`` from
synchronous code (the demo), or ``gymstream model serve-scripted`` as a separate process.
Requests are counted in ``ScriptedServer.stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import threading
from collections import Counter
from types import TracebackType
from typing import Any, cast

import msgspec

from gymstream.errors import ModelResponseError
from gymstream.rollout.model.chat import chat_to_response, responses_to_chat_request
from gymstream.testing.scripted_policy import MODEL_ID, chat_completion

__all__ = [
    "HANG_S",
    "ScriptedServer",
    "ScriptedThread",
    "serve_scripted",
    "start_scripted_in_thread",
]

logger = logging.getLogger(__name__)

HANG_S = 3600.0
"""How long a hung request waits before it is answered (504) if the client is still there."""

_MAX_HEAD_BYTES = 64 * 1024
_MAX_BODY_BYTES = 64 * 1024 * 1024

_ENCODER = msgspec.json.Encoder()
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    411: b"Length Required",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


def _error_body(message: str, kind: str) -> bytes:
    return _ENCODER.encode({"error": {"message": message, "type": kind, "code": None}})


_INJECTED_ERROR = _error_body("scripted failure (error_rate)", "server_error")
_HANG_ANSWER = _error_body("scripted hang ended (hang_rate)", "server_error")
_MODELS = _ENCODER.encode(
    {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "gymstream"}],
    }
)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Connection(asyncio.Protocol):
    """One client connection: parse requests, answer them in order, keep the connection alive.

    Requests are answered one at a time; while a delayed answer is pending, further bytes wait in
    the buffer (HTTP/1.1 answers must keep request order).
    """

    def __init__(self, server: ScriptedServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream server's transport; uvloop's do not subclass asyncio.Transport, so no isinstance
        self._transport = cast(asyncio.Transport, transport)
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._transport = None
        if self._pending is not None:
            self._pending.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._pending is None:
            self._serve(asyncio.get_running_loop().time())

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        if self._transport is not None:
            self._transport.close()

    def _serve(self, arrived: float) -> None:
        """Answer the buffered requests in order; a delayed answer is due ``delay`` after
        ``arrived`` (when its bytes came in), so the server's own work is inside the latency."""
        while self._transport is not None and not self._closing:
            try:
                request = self._parse()
            except _HttpError as exc:
                self._write(exc.status, _error_body(str(exc), "invalid_request_error"), False)
                return
            if request is None:
                return
            method, target, body, keep_alive = request
            delay_s, status, payload = self._server._answer(method, target, body)
            if delay_s > 0:
                self._pending = asyncio.get_running_loop().call_at(
                    arrived + delay_s, self._later, status, payload, keep_alive
                )
                return
            self._write(status, payload, keep_alive)

    def _later(self, status: int, payload: bytes, keep_alive: bool) -> None:
        self._pending = None
        self._write(status, payload, keep_alive)
        if self._buffer:
            self._serve(asyncio.get_running_loop().time())

    def _parse(self) -> tuple[str, str, bytes, bool] | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD_BYTES:
                raise _HttpError(431, "request head too large")
            return None
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise _HttpError(400, f"bad request line {lines[0][:100]!r}")
        method, target, version = parts
        keep_alive = version == "HTTP/1.1"
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.lower()
            if name == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise _HttpError(400, "bad Content-Length") from None
                if length < 0 or length > _MAX_BODY_BYTES:
                    raise _HttpError(413, "request body too large")
            elif name == "connection":
                option = value.strip().lower()
                if option == "close":
                    keep_alive = False
                elif option == "keep-alive":
                    keep_alive = True
            elif name == "transfer-encoding":
                raise _HttpError(
                    411, "chunked request bodies are not supported; send Content-Length"
                )
        start = end + 4
        if len(buffer) < start + length:
            return None
        body = bytes(buffer[start : start + length])
        del buffer[: start + length]
        return method, target, body, keep_alive

    def _write(self, status: int, payload: bytes, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        head = (
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (
                status,
                _REASONS.get(status, b"Unknown"),
                len(payload),
                b"" if keep_alive else b"Connection: close\r\n",
            )
        )
        transport.write(head + payload)
        if not keep_alive:
            self._closing = True
            transport.close()


class ScriptedServer:
    """The running server. ``url`` is the base URL clients use (ends in ``/v1``).

    Close with ``close()`` (sync: stops listening, drops connections, cancels pending answers)
    then ``await wait_closed()``; or use ``async with``. ``stats`` counts requests by kind.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        hang_rate: float = 0.0,
        seed: int = 0,
        latency_jitter_ms: float = 0.0,
    ) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        if not 0 <= latency_jitter_ms <= latency_ms:
            raise ValueError(
                f"latency_jitter_ms must be between 0 and latency_ms ({latency_ms:g}), "
                f"got {latency_jitter_ms:g}"
            )
        for label, rate in (("error_rate", error_rate), ("hang_rate", hang_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{label} must be between 0 and 1, got {rate}")
        if error_rate + hang_rate > 1.0:
            raise ValueError("error_rate + hang_rate must not exceed 1")
        self.host = host
        self.port = 0
        self.latency_s = latency_ms / 1000.0
        self.jitter_s = latency_jitter_ms / 1000.0
        # its own stream, so jitter does not shift the fault draws of a seed
        self._jitter_rng = random.Random(f"jitter-{seed}")
        self.error_rate = error_rate
        self.hang_rate = hang_rate
        self.seed = seed
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients, e.g. ``http://127.0.0.1:8123/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def requests(self) -> int:
        """Requests received so far (all paths, faults included)."""
        return self.stats["requests"]

    async def start(self, port: int = 0) -> None:
        """Listen on ``host:port`` (0 picks a free port; read it back from ``port``)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, port, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        """Stop listening and drop every connection (pending answers are cancelled)."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.close()

    async def wait_closed(self) -> None:
        """Wait until the listening socket is closed."""
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> ScriptedServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()

    def _answer(self, method: str, target: str, body: bytes) -> tuple[float, int, bytes]:
        """(delay before answering in s, status, body) for one request; never raises."""
        stats = self.stats
        stats["requests"] += 1
        path = target.split("?", 1)[0].rstrip("/")
        if path.startswith("/v1/"):
            path = path[3:]
        if path == "/models":
            if method != "GET":
                return 0.0, 405, _error_body("use GET /v1/models", "invalid_request_error")
            stats["models"] += 1
            return self._delay(), 200, _MODELS
        if path not in ("/responses", "/chat/completions"):
            stats["not_found"] += 1
            return 0.0, 404, _error_body(f"no route {target[:200]}", "invalid_request_error")
        if method != "POST":
            return 0.0, 405, _error_body(f"use POST {path}", "invalid_request_error")
        if self.error_rate or self.hang_rate:
            draw = self._rng.random()
            if draw < self.error_rate:
                stats["errors_injected"] += 1
                return self._delay(), 500 if draw < self.error_rate / 2 else 503, _INJECTED_ERROR
            if draw < self.error_rate + self.hang_rate:
                stats["hangs_injected"] += 1
                return HANG_S, 504, _HANG_ANSWER
        try:
            request = msgspec.json.decode(body)
            if not isinstance(request, dict):
                raise ValueError("the request body must be a JSON object")
            if request.get("stream"):
                raise ValueError("the scripted model does not stream; send stream=false")
            payload = self._complete(path, request)
        except (msgspec.DecodeError, ValueError, ModelResponseError) as exc:
            stats["bad_requests"] += 1
            return 0.0, 400, _error_body(str(exc), "invalid_request_error")
        except Exception:  # boundary: a policy bug must not kill the connection
            logger.exception("scripted model failed on a %s request", path)
            stats["internal_errors"] += 1
            return 0.0, 500, _error_body("scripted policy crashed; see server log", "server_error")
        stats[path[1:]] += 1
        return self._delay(), 200, payload

    def _delay(self) -> float:
        if not self.jitter_s:
            return self.latency_s
        return self.latency_s + self._jitter_rng.uniform(-self.jitter_s, self.jitter_s)

    def _complete(self, path: str, request: dict[str, Any]) -> bytes:
        if path == "/responses":
            chat = chat_completion(responses_to_chat_request(request), self.seed, next(self._ids))
            return _ENCODER.encode(chat_to_response(chat, request))
        chat = chat_completion(request, self.seed, next(self._ids))
        chat["id"] = f"chatcmpl-{chat['id']}"
        return _ENCODER.encode(chat)


async def serve_scripted(
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    hang_rate: float = 0.0,
    seed: int = 0,
    latency_jitter_ms: float = 0.0,
) -> ScriptedServer:
    """Start a scripted model server in the running loop and return it (listening).

    Raises ``ValueError`` for out-of-range settings and ``OSError`` when the port is taken.
    """
    server = ScriptedServer(
        host=host,
        latency_ms=latency_ms,
        error_rate=error_rate,
        hang_rate=hang_rate,
        seed=seed,
        latency_jitter_ms=latency_jitter_ms,
    )
    await server.start(port)
    return server


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
                    host, port, latency_ms, error_rate, hang_rate, seed, latency_jitter_ms
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
