"""A scripted, OpenAI-compatible model server: a fast test double for demo, tests and benchmarks.

A real HTTP/1.1 server (``connection.Connection``) serving ``POST /v1/responses``,
``POST /v1/chat/completions`` and ``GET /v1/models`` (the ``/v1`` prefix is optional). Answers
come from ``gymstream.testing.policy``: a deterministic policy that plays the example
environments. Latency, errors and hangs are injected by ``faults.Faults`` (see there).

Token ids and log-probs (``logprobs``): ``"asked"`` (the default) answers a Chat Completions
request that asks for them as vLLM does (``logprobs`` + ``return_tokens_as_token_ids``;
``return_token_ids`` adds the prompt ids) and serves ``POST /tokenize``; ``"always"`` also puts
them on the Responses API's last output item, as NeMo Gym's model server with
``return_token_id_information: true`` does; ``"never"`` ignores the request (a server that
drops them). ``POST /v1/tokenize`` and ``/tokenize`` both work.

Use ``await serve_scripted(...)`` inside an event loop, ``thread.start_scripted_in_thread(...)``
from synchronous code (the demo), or ``gymstream model serve-scripted`` as a separate process.
Requests are counted in ``ScriptedServer.stats``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from types import TracebackType
from typing import Any, Literal

import msgspec

from gymstream.errors import ModelResponseError
from gymstream.rollout.model.chat import responses_to_chat_request
from gymstream.rollout.model.response import chat_to_response
from gymstream.rollout.model.tokens import token_fields
from gymstream.testing.connection import Connection, error_body
from gymstream.testing.faults import Faults
from gymstream.testing.policy import MODEL_ID, chat_completion
from gymstream.testing.tokens import prompt_token_ids

LogprobsMode = Literal["asked", "always", "never"]

__all__ = ["LogprobsMode", "ScriptedServer", "serve_scripted"]

logger = logging.getLogger(__name__)

_ENCODER = msgspec.json.Encoder()
_MODELS = _ENCODER.encode(
    {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "gymstream"}],
    }
)


class ScriptedServer:
    """The running server. ``url`` is the base URL clients use (ends in ``/v1``).

    Close with ``close()`` (sync: stops listening, drops connections, cancels pending answers)
    then ``await wait_closed()``; or use ``async with``. ``stats`` counts requests by kind.
    Raises ``ValueError`` for out-of-range fault settings (see ``faults.Faults``).
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
        logprobs: LogprobsMode = "asked",
    ) -> None:
        if logprobs not in ("asked", "always", "never"):
            raise ValueError(f"logprobs must be asked, always or never, got {logprobs!r}")
        self.logprobs = logprobs
        self.host = host
        self.port = 0
        self.seed = seed
        self.faults = Faults(
            latency_ms=latency_ms,
            latency_jitter_ms=latency_jitter_ms,
            error_rate=error_rate,
            hang_rate=hang_rate,
            seed=seed,
        )
        self.stats: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()

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
            lambda: Connection(self._answer, self._connections), self.host, port, backlog=4096
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
                return 0.0, 405, error_body("use GET /v1/models", "invalid_request_error")
            stats["models"] += 1
            return self.faults.delay(), 200, _MODELS
        if path not in ("/responses", "/chat/completions", "/tokenize"):
            stats["not_found"] += 1
            return 0.0, 404, error_body(f"no route {target[:200]}", "invalid_request_error")
        if method != "POST":
            return 0.0, 405, error_body(f"use POST {path}", "invalid_request_error")
        injected = self.faults.inject()
        if injected is not None:
            kind, delay_s, status, payload = injected
            stats[kind] += 1
            return delay_s, status, payload
        try:
            request = msgspec.json.decode(body)
            if not isinstance(request, dict):
                raise ValueError("the request body must be a JSON object")
            if request.get("stream"):
                raise ValueError("the scripted model does not stream; send stream=false")
            payload = self._complete(path, request)
        except (msgspec.DecodeError, ValueError, ModelResponseError) as exc:
            stats["bad_requests"] += 1
            return 0.0, 400, error_body(str(exc), "invalid_request_error")
        except Exception:  # boundary: a policy bug must not kill the connection
            logger.exception("scripted model failed on a %s request", path)
            stats["internal_errors"] += 1
            return 0.0, 500, error_body("scripted policy crashed; see server log", "server_error")
        stats[path[1:]] += 1
        return self.faults.delay(), 200, payload

    def _complete(self, path: str, request: dict[str, Any]) -> bytes:
        mode = self.logprobs
        if path == "/tokenize" and mode != "never":
            ids = prompt_token_ids(request.get("messages") or [])
            return _ENCODER.encode({"count": len(ids), "max_model_len": 1 << 20, "tokens": ids})
        if path == "/tokenize":
            raise ValueError("this scripted server does not tokenize (logprobs=never)")
        if path == "/responses":
            chat_request = responses_to_chat_request(request)
            always = mode == "always"
            chat = chat_completion(
                chat_request, self.seed, next(self._ids), token_ids=always, prompt_ids=always
            )
            return _ENCODER.encode(
                chat_to_response(chat, request, _bundle(chat) if always else None)
            )
        asked = mode != "never" and bool(
            request.get("logprobs") and request.get("return_tokens_as_token_ids")
        )
        chat = chat_completion(
            request,
            self.seed,
            next(self._ids),
            token_ids=asked,
            prompt_ids=asked and bool(request.get("return_token_ids")),
        )
        chat["id"] = f"chatcmpl-{chat['id']}"
        return _ENCODER.encode(chat)


def _bundle(chat: dict[str, Any]) -> dict[str, Any]:
    """The three fields from a scripted chat answer made with token ids and prompt ids."""
    choice = chat["choices"][0]
    log_probs = [e["logprob"] for e in choice["logprobs"]["content"]]
    return token_fields(chat["prompt_token_ids"], choice["token_ids"], log_probs)


async def serve_scripted(
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    hang_rate: float = 0.0,
    seed: int = 0,
    latency_jitter_ms: float = 0.0,
    logprobs: LogprobsMode = "asked",
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
        logprobs=logprobs,
    )
    await server.start(port)
    return server
