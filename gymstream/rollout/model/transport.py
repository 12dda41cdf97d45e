"""An httpx transport on aiohttp's connection pool: the model client's hot path.

Why: httpx's own pool (httpcore) does bookkeeping per request that grows with the requests in
flight on it; with hundreds of rollouts in flight it dominated a worker's CPU. Measured against
the scripted model, 256 in flight, 2 cores: httpcore pools ~840 requests/s at ~610 us CPU per
request; this transport ~1,850 requests/s at ~340 us (`bench/`, docs/performance.md). Keeping
httpx as the API keeps ``httpx.MockTransport`` for tests and one client type everywhere.

Bodies are read whole (model answers are small JSON documents) and aiohttp's exceptions become
the httpx exceptions the model client classifies: timeouts as ``httpx.TimeoutException``,
refused or unreachable endpoints as ``httpx.ConnectError``, other failures as
``httpx.TransportError`` subclasses.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp ``ClientSession`` (created lazily, inside the running loop) per transport."""

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max_connections = max_connections
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                ssl=self._ssl if self._ssl is not None else True,
                enable_cleanup_closed=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        status, headers, content = await self.send(
            request.method,
            str(request.url),
            list(request.headers.multi_items()),
            await request.aread(),
            connect_s=timeouts.get("connect"),
            read_s=timeouts.get("read"),
            pool_s=timeouts.get("pool"),
            request=request,
        )
        return httpx.Response(
            status_code=status,
            headers=headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]] | Mapping[str, str],
        body: bytes,
        *,
        connect_s: float | None,
        read_s: float | None,
        pool_s: float | None = None,
        request: httpx.Request | None = None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request, its whole answer: (status, raw headers, body); httpx's exceptions.

        The model client calls this directly on its hot path: it skips httpx's request and
        response objects and cookie jar (about 40% of a worker's CPU in a profile).
        """
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_s, sock_read=read_s, connect=pool_s
        )
        try:
            async with self._get_session().request(
                method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                return answer.status, list(answer.raw_headers), await answer.read()
        except aiohttp.ClientConnectorError as exc:  # refused, unreachable, DNS
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(f"timed out: {exc}", request=request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(str(exc), request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
