"""In-test stand-ins for NeMo Gym 0.7.0's servers (until the real-NeMo-Gym harness is merged).

- ``recorded_app(prefix)``: answers exactly as the recordings in
  ``tests/data/nemo_gym_protocol/<prefix>_*.json`` show (status, body as FastAPI renders it:
  compact JSON with UTF-8 kept, the recorded Set-Cookie), matching a request by path and body.
- ``native_app(env)``: a resources server over one of our native environments, with the
  cookie as the session (as Starlette's session middleware), for end-to-end runs.
- ``ServerThread``: any such app on 127.0.0.1 in a thread of its own.

Every request is logged (path, body, Cookie header) so that tests can assert what was sent.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from gymstream.nemo_gym.servers.tool_answers import ToolText, tool_output_text

PROTOCOL = Path(__file__).resolve().parent / "data" / "nemo_gym_protocol"
"""A copy of the shared recordings (``nemo-gym-protocol/``) that the tests use, so a clean clone
has them."""


def protocol_dir() -> Path:
    return PROTOCOL


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((protocol_dir() / name).read_text(encoding="utf-8"))
    return data


def fastapi_text(body: Any) -> str:
    """A body as FastAPI's JSONResponse renders it (compact, UTF-8 kept)."""
    return tool_output_text(body)


@dataclass
class Seen:
    path: str
    body: Any
    cookie: str | None


@dataclass
class Behaviour:
    """Faults to inject: statuses to answer first per path, a delay per path (seconds)."""

    fail_first: dict[str, list[int]] = field(default_factory=dict)
    delay_s: dict[str, float] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)


async def _faults(request: web.Request, behaviour: Behaviour) -> web.Response | None:
    body = await request.json() if request.can_read_body else None
    behaviour.seen.append(Seen(request.path, body, request.headers.get("Cookie")))
    if request.path in behaviour.delay_s:
        await asyncio.sleep(behaviour.delay_s[request.path])
    pending = behaviour.fail_first.get(request.path)
    if pending:
        return web.Response(status=pending.pop(0), text="Service Unavailable")
    return None


async def _health(request: web.Request) -> web.Response:
    return web.json_response({})


def recorded_app(prefix: str, behaviour: Behaviour) -> web.Application:
    """Answers from the recordings whose file name starts with ``prefix``."""
    files = sorted(protocol_dir().glob(f"{prefix}_[0-9]*.json"))
    exchanges = [e for e in (recording(p.name) for p in files) if "request" in e]

    async def handle(request: web.Request) -> web.Response:
        injected = await _faults(request, behaviour)
        if injected is not None:
            return injected
        body = behaviour.seen[-1].body
        candidates = [
            e
            for e in exchanges
            if e["request"]["url"].endswith(request.path) and e["request"]["method"] == "POST"
        ]
        if not candidates:
            return web.Response(status=404, text=fastapi_text({"detail": "Not Found"}))
        has_cookie = behaviour.seen[-1].cookie is not None

        def fit(e: dict[str, Any]) -> tuple[bool, bool]:
            recorded_cookie = "cookie" in e["request"]["headers"]
            return (e["request"]["body"] == body, recorded_cookie == has_cookie)

        chosen = max(candidates, key=fit)
        answer = chosen["response"]
        out = web.Response(
            status=answer["status"],
            text=fastapi_text(answer["body"]),
            content_type="application/json",
        )
        for cookie in answer["headers"].get("set-cookie", []):
            out.headers.add("Set-Cookie", cookie)
        return out

    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_post("/{tail:.*}", handle)
    return app


def native_app(
    env: Any, behaviour: Behaviour, cookie_name: str = "Fake___server"
) -> web.Application:
    """A resources server over a native environment; the cookie carries the session id."""
    sessions: dict[str, Any] = {}

    def session_of(request: web.Request, row: dict[str, Any] | None) -> tuple[str, Any]:
        sid = request.cookies.get(cookie_name)
        if sid is None or sid not in sessions:
            sid = uuid.uuid4().hex
            sessions[sid] = env.new_session(row or {})
        return sid, sessions[sid]

    def answer(sid: str, body: Any, status: int = 200) -> web.Response:
        out = web.Response(status=status, text=fastapi_text(body), content_type="application/json")
        out.set_cookie(cookie_name, sid)
        return out

    async def handle(request: web.Request) -> web.Response:
        injected = await _faults(request, behaviour)
        if injected is not None:
            return injected
        body = behaviour.seen[-1].body
        name = request.path.lstrip("/")
        if name == "seed_session":
            sid = uuid.uuid4().hex
            sessions[sid] = env.new_session(body)
            return answer(sid, {})
        if name == "aggregate_metrics":
            rewards = [r["reward"] for r in body["verify_responses"]]
            mean = sum(rewards) / len(rewards)
            return web.json_response(
                {
                    "group_level_metrics": [],
                    "agent_metrics": {"mean/reward": mean, "rollouts": len(rewards)},
                    "key_metrics": {"mean/reward": mean},
                    "perf_summary": None,
                    "repeat_level_metrics": [],
                }
            )
        sid, session = session_of(request, None)
        if name == "verify":
            row = {k: v for k, v in body.items() if k != "response"}
            fields = await env.verify(row, body["response"])
            verified = {
                "responses_create_params": row["responses_create_params"],
                "response": body["response"],
                "mask_sample": False,
                "failure_kind": None,
                "failure_reason": None,
                **fields,
            }
            return answer(sid, verified)
        tool: Callable[..., Any] | None = env.tools.get(name)
        if tool is None:
            return answer(sid, {"detail": "Not Found"}, 404)
        result = tool(session, body)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, ToolText):  # a typed tool's 422 body, verbatim
            out = web.Response(status=422, text=result.text, content_type="application/json")
            out.set_cookie(cookie_name, sid)
            return out
        return answer(sid, result)

    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_post("/{tail:.*}", handle)
    return app


class ServerThread:
    """An aiohttp app served on 127.0.0.1 (a free port) by a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake NeMo Gym server did not start within 10 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
