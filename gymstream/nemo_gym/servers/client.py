"""One pooled HTTP client per NeMo Gym server per process: timeouts, bounded retries, cookies.

NeMo Gym's servers (resources servers, agents, environment servers) are FastAPI apps; their
session is a cookie (Starlette's session middleware, re-set on every answer). This client keeps
no cookie jar of its own: thousands of rollouts share its connection pool, so each caller passes
the cookies of its own rollout and gets the answer's back (``ServerAnswer.cookies``).

Every call has a real timeout (NeMo Gym's client has none). Connection errors, timeouts and the
statuses in ``retry_statuses`` are retried with exponential backoff and jitter, at most
``RetrySettings.max_attempts`` times; then ``ServerCallError`` (``unavailable``: retriable as a
whole rollout). Any other status is returned to the caller, who decides what it means.

A server that *answers*, twice in a row, with the same 5xx other than 502/503/504 is confirmed
broken for this request: ``ServerResponseError`` (``error``: terminal) after that one
confirmation. Why: a deterministic 500 (NeMo Gym's wordle without its data file) is the
environment's bug; retrying it 4 times per call and then again per rollout only hides it and
costs minutes. 502/503/504 mean a gateway or an overloaded server: they stay ``unavailable``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import aiohttp

from gymstream.errors import ServerCallError, ServerResponseError
from gymstream.settings import RetrySettings, ServerSettings
from gymstream.wire.messages import FailureClass

__all__ = ["RETRY_5XX", "TRANSIENT_5XX", "ServerAnswer", "ServerClient"]

RETRY_5XX = frozenset(range(500, 600))
"""Statuses a call retries by default: every server error."""
TRANSIENT_5XX = frozenset({502, 503, 504})
"""Server errors that mean "not now" (a gateway, an overloaded server), never confirmed broken."""


@dataclass(frozen=True)
class ServerAnswer:
    """An answer: status, the body as text (exactly as sent), the cookies it set."""

    status: int
    text: str
    cookies: dict[str, str]


class ServerClient:
    """POSTs to one server (``url``, named ``instance`` in messages); close with ``aclose``."""

    def __init__(
        self,
        instance: str,
        url: str,
        *,
        settings: ServerSettings,
        retry: RetrySettings,
        unavailable: FailureClass = FailureClass.RESOURCES_SERVER_UNAVAILABLE,
        error: FailureClass = FailureClass.RESOURCES_SERVER_ERROR,
    ) -> None:
        self.instance = instance
        self.url = url.rstrip("/")
        self._settings = settings
        self._retry = retry
        self._unavailable = unavailable
        self._error = error
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created inside the running loop, on first use
            limit = self._settings.max_connections
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
                cookie_jar=aiohttp.DummyCookieJar(),  # cookies are per rollout, never shared
                timeout=aiohttp.ClientTimeout(
                    total=self._settings.timeout_s, connect=self._settings.connect_timeout_s
                ),
            )
        return self._session

    async def post(
        self,
        path: str,
        body: bytes,
        cookies: Mapping[str, str] | None = None,
        *,
        retry_statuses: Collection[int] = RETRY_5XX,
    ) -> ServerAnswer:
        """POST ``body`` (JSON bytes) to ``path``; see the module docstring for retries."""
        headers = {"Content-Type": "application/json"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        url = f"{self.url}{path}"
        delay_s = self._retry.backoff_initial_s
        attempts = self._retry.max_attempts
        problem = ""
        status: int | None = None
        previous: int | None = None  # the status of the attempt before, when it answered
        for attempt in range(1, attempts + 1):
            try:
                async with self._get_session().post(url, data=body, headers=headers) as answer:
                    text = await answer.text()
                    status = answer.status
                    if status not in retry_statuses:
                        got = {name: morsel.value for name, morsel in answer.cookies.items()}
                        return ServerAnswer(status=status, text=text, cookies=got)
                    problem = f"HTTP {status}: {text[:200]}"
                    if _confirmed(status, previous):
                        raise self._broken(url, status, problem, attempt)
                    previous = status
            except TimeoutError:
                problem, status = f"no answer within {self._settings.timeout_s:g} s", None
                previous = None
            except aiohttp.ClientError as exc:
                problem, status = f"{type(exc).__name__}: {exc}", None
                previous = None
            if attempt < attempts:
                await asyncio.sleep(delay_s * (0.5 + random.random() / 2))
                delay_s = min(delay_s * 2, self._retry.backoff_max_s)
        raise ServerCallError(
            f"NeMo Gym server '{self.instance}' ({url}) failed {attempts} times: {problem}",
            failure_class=self._unavailable,
            http_status=status,
            attempts=attempts,
        )

    def _broken(self, url: str, status: int, problem: str, attempts: int) -> ServerResponseError:
        return ServerResponseError(
            f"NeMo Gym server '{self.instance}' ({url}) answered the same error twice, "
            f"{problem}: the environment's error, not an outage (see the server's log)",
            failure_class=self._error,
            http_status=status,
            attempts=attempts,
        )

    async def healthy(self) -> str | None:
        """None when ``GET /health`` answers 200, else what went wrong (one short phrase)."""
        try:
            async with self._get_session().get(
                f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=5.0)
            ) as answer:
                return None if answer.status == 200 else f"/health answered HTTP {answer.status}"
        except TimeoutError:
            return "/health did not answer within 5 s"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def aclose(self) -> None:
        """Close the pool (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _confirmed(status: int, previous: int | None) -> bool:
    """A 5xx answered twice in a row (not a gateway's or an overloaded server's): a bug."""
    return status == previous and status >= 500 and status not in TRANSIENT_5XX
