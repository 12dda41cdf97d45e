"""OpenAI-compatible model client on one pooled httpx.AsyncClient, with bounded, jittered retries.

``build_model_client(settings, retry)`` returns an ``HttpModelClient`` whose ``create(params)``
takes a Responses API request body and returns a Responses API ``Response`` as a dict, whether
the endpoint serves the Responses API (``POST {base_url}/responses``) or only Chat Completions
(``POST {base_url}/chat/completions``, converted both ways by ``gymstream.rollout.model.chat``).

Failure contract (what ``create`` raises):
- ``ModelCallError`` (retriable) after ``RetrySettings.max_attempts`` attempts failed with 429,
  5xx, a timeout or a connection error; ``failure_class`` is ``model_http_429``,
  ``model_http_5xx``, ``model_timeout`` or ``model_connection_error`` (the last failure's kind);
  ``attempts`` says how many were made. Waits between attempts are exponential backoff with full
  jitter, or the server's ``Retry-After`` (capped at ``MAX_RETRY_AFTER_S``) when it sends one.
- ``ModelResponseError`` (not retriable) at once for any other non-2xx answer
  (``model_http_4xx``; ``model_http_3xx`` for an unfollowed redirect), for a body that is not
  JSON or lacks ``output`` (``model_malformed_response``), and for a request that has no chat
  equivalent (``model_request_unsupported``).
- ``ModelResponseError`` with ``model_token_ids_missing`` (not retriable) when token ids were
  asked for (``return_token_id_information``) and the answer lacks them (see ``model.tokens``).
The API key goes only into the Authorization header: never into logs, messages or reprs.

Connection pooling: httpx's own pool does work per request that grows with the requests in
flight on it. When the client builds its own pool it uses one ``httpx.AsyncClient`` on
``http_transport.AiohttpTransport`` (aiohttp's pool, at most ``max_connections``
connections): about twice the requests per CPU second. A client passed in is used as is.

Token ids (``return_token_id_information``): on Chat Completions the request asks vLLM for them,
the answer's ids and log-probs go on the turn's last output item, and when vLLM sends no
``prompt_token_ids`` the prompt ids come from ``POST {base_url without /v1}/tokenize`` of the
same chat request (one more call, with the same retries). Off (the default), nothing changes.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx
import msgspec

from gymstream.errors import ModelCallError, ModelResponseError
from gymstream.nemo_gym.servers.vllm_model import prepare_chat
from gymstream.rollout.model import tokens
from gymstream.rollout.model.chat import responses_to_chat_request
from gymstream.rollout.model.response import chat_to_response
from gymstream.rollout.model.transport import AiohttpTransport
from gymstream.settings import ModelSettings, RetrySettings
from gymstream.wire.messages import FailureClass

__all__ = [
    "MAX_RETRY_AFTER_S",
    "HttpModelClient",
    "ModelClient",
    "backoff_delay_s",
    "build_model_client",
    "parse_retry_after_s",
]

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 30.0
"""A server's Retry-After is honoured up to this many seconds per wait."""

_ENCODER = msgspec.json.Encoder()
_SNIPPET_CHARS = 300
"""In-flight requests per httpx pool above which httpx's pool bookkeeping dominates CPU."""


class ModelClient(Protocol):
    """The seam between the agent loop and a model: one Responses API call."""

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        """Send a Responses API request body; return the Response object as a dict."""
        ...


def parse_retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, float(when.timestamp()) - current)


def backoff_delay_s(attempt: int, retry: RetrySettings, draw: Callable[[], float]) -> float:
    """Full-jitter exponential backoff before attempt ``attempt + 1`` (``attempt`` counts from 1).

    ``draw()`` returns a float in [0, 1); the delay is ``draw() * min(max, initial * 2**(n-1))``.
    """
    ceiling = min(retry.backoff_max_s, retry.backoff_initial_s * (2.0 ** (attempt - 1)))
    return draw() * ceiling


def _display_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parsed = httpx.URL(url)
    if parsed.userinfo:
        return str(parsed.copy_with(username=None, password=None))
    return url


class HttpModelClient:
    """A ``ModelClient`` over HTTP. Safe to share by any number of concurrent rollouts.

    Owns its pools only when it created them (``http`` is None); ``aclose()`` closes only
    those. ``sleep`` and ``draw`` are injectable so tests can observe backoff without waiting.
    """

    def __init__(
        self,
        settings: ModelSettings,
        retry: RetrySettings,
        http: httpx.AsyncClient | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._api = settings.api
        base = settings.base_url.rstrip("/")
        self._url = (
            f"{base}/chat/completions" if self._api == "chat_completions" else (f"{base}/responses")
        )
        self._shown_url = _display_url(self._url)
        self._token_ids = settings.return_token_id_information
        self._vllm = settings.vllm
        self._tokenize_url = f"{base.removesuffix('/v1')}/tokenize"
        self._retry = retry
        self._timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self._secret = settings.api_key.get_secret_value() if settings.api_key else ""
        if self._secret:
            self._headers["Authorization"] = f"Bearer {self._secret}"
        self._owns_http = http is None
        self._http = http if http is not None else _build_http(settings, self._timeout)
        transport = getattr(self._http, "_transport", None)
        # our own pool is called directly (see _send); an injected client goes through httpx
        self._fast = transport if http is None and isinstance(transport, AiohttpTransport) else None
        self._sleep = sleep
        self._draw = draw

    def __repr__(self) -> str:
        return f"HttpModelClient(url={self._shown_url!r}, api={self._api!r})"

    @property
    def url(self) -> str:
        """The endpoint URL this client posts to (credentials removed)."""
        return self._shown_url

    async def aclose(self) -> None:
        """Close the pooled HTTP clients if this object created them."""
        if self._owns_http:
            await self._http.aclose()

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        """One Responses API call with retries; see the module docstring for what it raises."""
        if self._token_ids:
            return await self._create_with_token_ids(params)
        if self._api == "chat_completions":
            chat = responses_to_chat_request(params, vllm=self._vllm)
            chat = self._vllm_body(chat, params)
            answer = await self._post(_ENCODER.encode(chat), "choices")
            return chat_to_response(answer, params, vllm=self._vllm)
        return await self._post(_ENCODER.encode(params), "output")

    async def _create_with_token_ids(self, params: dict[str, Any]) -> dict[str, Any]:
        """``create`` with return_token_id_information on (see ``model.tokens``)."""
        if self._api != "chat_completions":
            response = await self._post(_ENCODER.encode(params), "output")
            tokens.check_response_tokens(response, self._shown_url)
            return response
        chat = responses_to_chat_request(params, token_ids=True, vllm=self._vllm)
        chat.update(tokens.TOKEN_REQUEST)
        chat = self._vllm_body(chat, params)
        answer = await self._post(_ENCODER.encode(chat), "choices")
        bundle, generation, log_probs = tokens.read_chat_tokens(answer, self._shown_url)
        if bundle is None:
            prompt = tokens.prompt_ids(answer, self._shown_url)
            if prompt is None:
                prompt = await self._tokenize(chat)
            bundle = tokens.token_fields(prompt, generation, log_probs)
        return chat_to_response(answer, params, bundle, self._vllm)

    def _vllm_body(self, chat: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """A NeMo Gym vllm_model's request rules (``model.vllm``), when this endpoint is one."""
        return chat if self._vllm is None else prepare_chat(chat, params, self._vllm)

    async def _tokenize(self, chat: dict[str, Any]) -> list[int]:
        """The prompt ids of ``chat`` from vLLM's ``POST /tokenize`` (same retries)."""
        body = _ENCODER.encode(tokens.tokenize_request(chat))
        answer = await self._post(body, "tokens", self._tokenize_url)
        return tokens.read_tokenize(answer, _display_url(self._tokenize_url))

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def _post(
        self, content: bytes, required_key: str, url: str | None = None
    ) -> dict[str, Any]:
        target = self._url if url is None else url
        shown = self._shown_url if url is None else _display_url(url)
        attempts = self._retry.max_attempts
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            cause: BaseException | None = None
            try:
                status, body, retry_after_header = await self._send(target, content)
            except httpx.TimeoutException as exc:
                cause = exc
                failure_class, http_status = FailureClass.MODEL_TIMEOUT, None
                problem = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                cause = exc
                failure_class, http_status = FailureClass.MODEL_CONNECTION_ERROR, None
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                http_status = status
                if 200 <= status < 300:
                    return self._decode(status, body, required_key, attempt, shown)
                snippet = _text(body)[:_SNIPPET_CHARS].replace("\n", " ")
                if status != 429 and status < 500:
                    raise ModelResponseError(
                        self._redact(
                            f"model endpoint {shown} answered HTTP {status}, which a "
                            f"retry cannot fix: {snippet}"
                        ),
                        failure_class=FailureClass.MODEL_HTTP_4XX
                        if status >= 400
                        else FailureClass.MODEL_HTTP_3XX,
                        http_status=status,
                        attempts=attempt,
                    )
                failure_class = (
                    FailureClass.MODEL_HTTP_429 if status == 429 else FailureClass.MODEL_HTTP_5XX
                )
                problem = f"answered HTTP {status}: {snippet}"
                retry_after = parse_retry_after_s(retry_after_header)
            if attempt == attempts:
                raise ModelCallError(
                    self._redact(
                        f"model endpoint {shown} {problem}; gave up after {attempt} "
                        f"attempt(s). Check that the model server is up and not overloaded."
                    ),
                    failure_class=failure_class,
                    http_status=http_status,
                    attempts=attempt,
                ) from cause
            if retry_after is not None:
                delay = min(retry_after, MAX_RETRY_AFTER_S)
            else:
                delay = backoff_delay_s(attempt, self._retry, self._draw)
            logger.info(
                "model call %s (%s); attempt %d/%d, retrying in %.2fs",
                failure_class,
                shown,
                attempt,
                attempts,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def _send(self, url: str, content: bytes) -> tuple[int, bytes, str | None]:
        """POST one body: (status, body, Retry-After). Raises httpx's transport exceptions."""
        if self._fast is not None:  # our own aiohttp pool: skip httpx's objects (hot path)
            status, headers, body = await self._fast.send(
                "POST",
                url,
                self._headers,
                content,
                connect_s=self._timeout.connect,
                read_s=self._timeout.read,
                pool_s=self._timeout.pool,
            )
            retry_after = next(
                (v.decode("latin-1") for k, v in headers if k.lower() == b"retry-after"), None
            )
            return status, body, retry_after
        resp = await self._http.post(
            url, content=content, headers=self._headers, timeout=self._timeout
        )
        return resp.status_code, resp.content, resp.headers.get("retry-after")

    def _decode(
        self, status: int, content: bytes, required_key: str, attempt: int, shown: str
    ) -> dict[str, Any]:
        try:
            data = msgspec.json.decode(content)
        except msgspec.DecodeError as exc:
            raise ModelResponseError(
                self._redact(
                    f"model endpoint {shown} answered HTTP {status} with a "
                    f"body that is not JSON: {_text(content)[:_SNIPPET_CHARS]!r}"
                ),
                failure_class=FailureClass.MODEL_MALFORMED_RESPONSE,
                http_status=status,
                attempts=attempt,
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get(required_key), list):
            raise ModelResponseError(
                self._redact(
                    f"model endpoint {shown} answered JSON without a {required_key!r} "
                    f"list: {_text(content)[:_SNIPPET_CHARS]!r}"
                ),
                failure_class=FailureClass.MODEL_MALFORMED_RESPONSE,
                http_status=status,
                attempts=attempt,
            )
        return data


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


def _build_http(settings: ModelSettings, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """The process's pool: one httpx client on aiohttp's pool (see ``http_transport``)."""
    transport = AiohttpTransport(max_connections=settings.max_connections)
    return httpx.AsyncClient(timeout=timeout, transport=transport)


def build_model_client(
    settings: ModelSettings, retry: RetrySettings, http: httpx.AsyncClient | None = None
) -> HttpModelClient:
    """The process's model client. Pass ``http`` to use that pool as is; else the client builds
    its own (see the module docstring; close it with ``aclose()``). Per-request timeouts come
    from ``settings`` either way."""
    return HttpModelClient(settings, retry, http)
