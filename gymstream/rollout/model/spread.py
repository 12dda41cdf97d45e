"""Several servers of one model (a NeMo Gym ``vllm_model``'s ``base_url`` list).

NeMo Gym 0.7.0's vllm_model keeps one OpenAI client (one pool) per URL and sends every request
of a session (one rollout) to the same one: ``sha256(session id) % len(base_url)``, so the
server keeps the rollout's prefix in its cache. gymstream does the same with one
``HttpModelClient`` (its own pool) per URL; a rollout takes the next server round robin at its
first model call and keeps it to its end (exactly even, where a hash of random session ids is
even on average). The agent loop opens a ``model_session()`` per rollout; a call outside any
session goes to the next server, call by call.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from gymstream.rollout.model.client import HttpModelClient, build_model_client
from gymstream.settings import ModelSettings, RetrySettings

__all__ = ["SpreadModelClient", "model_session", "open_model_client"]


class _Session:
    """The server a rollout was given (by each spread client: one model per rollout)."""

    __slots__ = ("servers",)

    def __init__(self) -> None:
        self.servers: dict[int, int] = {}


_SESSION: ContextVar[_Session | None] = ContextVar("gymstream_model_session", default=None)


@contextlib.contextmanager
def model_session() -> Iterator[None]:
    """Every model call inside (one rollout) goes to the same server of a spread client."""
    token = _SESSION.set(_Session())
    try:
        yield
    finally:
        _SESSION.reset(token)


class SpreadModelClient:
    """A ``ModelClient`` over one ``HttpModelClient`` per server; see the module docstring."""

    def __init__(self, clients: Sequence[HttpModelClient]) -> None:
        if not clients:
            raise ValueError("a spread model client needs at least one server")
        self._clients = list(clients)
        self._next = itertools.cycle(range(len(self._clients)))

    def __repr__(self) -> str:
        return f"SpreadModelClient({', '.join(c.url for c in self._clients)})"

    @property
    def url(self) -> str:
        """The endpoint URLs, comma-separated (credentials removed)."""
        return ",".join(c.url for c in self._clients)

    def server_for_call(self) -> int:
        """The index of the server the next call goes to (the session's, once assigned)."""
        session = _SESSION.get()
        if session is None:
            return next(self._next)
        key = id(self)
        if key not in session.servers:
            session.servers[key] = next(self._next)
        return session.servers[key]

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        """One Responses API call on the rollout's server (``HttpModelClient.create``)."""
        return await self._clients[self.server_for_call()].create(params)

    async def aclose(self) -> None:
        """Close every server's pool."""
        for client in self._clients:
            await client.aclose()


def open_model_client(
    settings: ModelSettings, retry: RetrySettings
) -> HttpModelClient | SpreadModelClient:
    """The process's model client: one pool for ``base_url``, or one per server of
    ``base_urls`` behind a ``SpreadModelClient`` (close either with ``aclose()``)."""
    urls = list(dict.fromkeys(settings.base_urls))
    if len(urls) < 2:
        return build_model_client(settings, retry)
    return SpreadModelClient(
        [build_model_client(settings.model_copy(update={"base_url": u}), retry) for u in urls]
    )
