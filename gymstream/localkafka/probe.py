"""Ask a broker which brokers the cluster has, over a raw socket (Kafka Metadata v4, no topics).

Blocking and free of asyncio on purpose: the launcher is called from the CLI, from pytest fixtures
and from inside running event loops (a test that stops a broker), where an aiokafka client would
need a loop of its own. Metadata v4 is the oldest version Kafka 4.x still serves (KIP-896).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = ["MetadataReply", "decode_metadata_reply", "encode_metadata_request", "fetch_metadata"]

_METADATA_API_KEY = 3
_METADATA_VERSION = 4
_CLIENT_ID = b"gymstream-localkafka"


@dataclass(frozen=True, slots=True)
class MetadataReply:
    """The part of a Metadata response the launcher needs."""

    broker_ids: frozenset[int]
    cluster_id: str | None
    controller_id: int


def encode_metadata_request(correlation_id: int) -> bytes:
    """A size-prefixed Metadata v4 request for no topics (brokers and cluster id only)."""
    header = struct.pack(
        ">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(_CLIENT_ID)
    )
    body = struct.pack(">ib", 0, 0)  # topics: empty array; allow_auto_topic_creation: false
    payload = header + _CLIENT_ID + body
    return struct.pack(">i", len(payload)) + payload


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        raw = self._data[self._pos : self._pos + length]
        self._pos += length
        return raw.decode("utf-8")


def decode_metadata_reply(payload: bytes, correlation_id: int) -> MetadataReply:
    """Decode a Metadata v4 response (without its size prefix); ValueError if malformed."""
    try:
        reader = _Reader(payload)
        if reader.take(">i") != correlation_id:
            raise ValueError("correlation id mismatch")
        reader.take(">i")  # throttle_time_ms
        broker_ids: set[int] = set()
        for _ in range(reader.take(">i")):
            broker_ids.add(reader.take(">i"))
            reader.string()  # host
            reader.take(">i")  # port
            reader.string()  # rack
        cluster_id = reader.string()
        controller_id = reader.take(">i")
    except struct.error as exc:
        raise ValueError(f"truncated metadata response: {exc}") from exc
    return MetadataReply(frozenset(broker_ids), cluster_id, controller_id)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def fetch_metadata(host: str, port: int, timeout_s: float = 2.0) -> MetadataReply:
    """One Metadata round trip; raises OSError (refused, timeout) or ValueError (bad reply)."""
    correlation_id = 1
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(encode_metadata_request(correlation_id))
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        return decode_metadata_reply(_recv_exact(sock, size), correlation_id)
