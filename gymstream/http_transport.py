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
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
            connect=timeouts.get("pool"),
        )
        body = await request.aread()
        try:
            async with self._get_session().request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                content = await answer.read()
                return httpx.Response(
                    status_code=answer.status,
                    headers=list(answer.raw_headers),
                    content=content,
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
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
