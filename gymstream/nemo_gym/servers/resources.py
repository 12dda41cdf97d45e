"""The HTTP environment: a NeMo Gym resources server, driven exactly as ``simple_agent`` does.

Per rollout a cookie jar (the server's session is its cookie): ``POST /seed_session`` with the
row; for each function call ``POST /<tool name>`` with the JSON-decoded arguments, and the raw
answer body becomes the ``function_call_output`` whatever the status (a 422 for bad arguments, a
404 for an unknown tool: the model sees NeMo Gym's own text); arguments that are not JSON become
NeMo Gym's ``{"error": "Invalid tool call arguments: ..."}``. ``POST /verify`` gets the row plus
``response``, and its answer is the output row's fields as returned.

Failures (never a reward of 0): a server that cannot be reached, times out or answers
502/503/504 on ``/seed_session`` or a tool is ``resources_server_unavailable`` (retried here, then
retriable as a rollout); a 4xx on ``/seed_session`` or ``/verify``, the same other 5xx twice in a
row (``client.py``), a 500 from ``/verify`` (the verifier crashed: the environment's bug) or a
verify answer without a numeric ``reward`` is ``resources_server_error`` (terminal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gymstream.errors import ServerResponseError
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.nemo_gym.servers.tool_answers import decode_arguments, invalid_arguments_text

__all__ = ["ResourcesServerEnvironment", "ResourcesSession"]

_ENCODER = msgspec.json.Encoder()
_VERIFY_RETRIES = frozenset({502, 503, 504})  # a 500 from /verify is the verifier's crash


@dataclass
class ResourcesSession:
    """One rollout's cookies, updated from every answer (as ``simple_agent`` does)."""

    cookies: dict[str, str] = field(default_factory=dict)


def _object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class ResourcesServerEnvironment:
    """An environment whose tools and verifier live in a NeMo Gym resources server."""

    name: str
    client: ServerClient

    async def seed(self, row: dict[str, Any]) -> ResourcesSession:
        """``POST /seed_session`` with the row; the session is the cookies it sets."""
        answer = await self.client.post("/seed_session", _ENCODER.encode(row))
        if answer.status >= 300:
            raise ServerResponseError(
                f"resources server '{self.client.instance}' refused /seed_session with "
                f"HTTP {answer.status}: {answer.text[:300]}",
                http_status=answer.status,
            )
        return ResourcesSession(cookies=dict(answer.cookies))

    async def call_tool(self, session: ResourcesSession, name: str, arguments: Any) -> str:
        """The ``function_call_output`` text of one call: the server's body, whatever the status."""
        try:
            parsed = decode_arguments(arguments)
        except (json.JSONDecodeError, TypeError) as exc:
            return invalid_arguments_text(exc)
        answer = await self.client.post(f"/{name}", _ENCODER.encode(parsed), session.cookies)
        session.cookies.update(answer.cookies)
        return answer.text

    async def verify_session(
        self, session: ResourcesSession, row: dict[str, Any], response: dict[str, Any]
    ) -> dict[str, Any]:
        """``POST /verify`` with the row plus ``response``; the answer's fields as returned."""
        body = _ENCODER.encode({**row, "response": response})
        answer = await self.client.post(
            "/verify", body, session.cookies, retry_statuses=_VERIFY_RETRIES
        )
        fields = _object(answer.text) if answer.status < 300 else None
        if fields is None or isinstance(fields.get("reward"), bool):
            raise ServerResponseError(
                f"resources server '{self.client.instance}' /verify answered HTTP "
                f"{answer.status}: {answer.text[:300]}",
                http_status=answer.status,
            )
        if not isinstance(fields.get("reward"), int | float):
            raise ServerResponseError(
                f"resources server '{self.client.instance}' /verify gave no numeric 'reward': "
                f"{answer.text[:300]}",
                http_status=answer.status,
            )
        return fields
