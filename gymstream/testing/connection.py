"""One HTTP/1.1 client connection of the scripted model: parse requests, answer them in order.

A plain asyncio protocol (keep-alive, Content-Length bodies; no extra dependency). It knows
nothing about routes or faults: each request goes to an ``Answer`` callable that returns
(delay before answering in s, status, JSON body). A delayed answer is due ``delay`` after the
request's bytes arrived, so the server's own work counts inside the latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableSet
from typing import cast

import msgspec

__all__ = ["Answer", "Connection", "error_body"]

Answer = Callable[[str, str, bytes], tuple[float, int, bytes]]
"""(method, target, body) -> (delay before answering in s, status, body); never raises."""

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


def error_body(message: str, kind: str) -> bytes:
    """An OpenAI-style error body: ``{"error": {"message", "type", "code"}}``."""
    return _ENCODER.encode({"error": {"message": message, "type": kind, "code": None}})


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Connection(asyncio.Protocol):
    """One client connection: parse requests, answer them in order, keep the connection alive.

    Requests are answered one at a time; while a delayed answer is pending, further bytes wait in
    the buffer (HTTP/1.1 answers must keep request order). The connection adds itself to
    ``registry`` while open, so the server can drop every connection on close.
    """

    def __init__(self, answer: Answer, registry: MutableSet[Connection]) -> None:
        self._answer = answer
        self._registry = registry
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream server's transport; uvloop's do not subclass asyncio.Transport, so no isinstance
        self._transport = cast(asyncio.Transport, transport)
        self._registry.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.discard(self)
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
                self._write(exc.status, error_body(str(exc), "invalid_request_error"), False)
                return
            if request is None:
                return
            method, target, body, keep_alive = request
            delay_s, status, payload = self._answer(method, target, body)
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
