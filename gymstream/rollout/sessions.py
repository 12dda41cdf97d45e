"""One rollout's view of its environment, whatever its kind: seed, call a tool, verify.

The agent loop talks to ``Sessions`` only. Two adapters implement it: ``InProcess`` for a
native ``Environment`` (tools are Python functions, the fast path) and ``Served`` for a
``SessionEnvironment`` (a NeMo Gym resources server over HTTP). Which one an agent gets is
decided once, from its configuration (``rollout.connect.open_agent``), or from the object a
caller hands to ``run_rollout`` (``sessions_of``); the loop never asks.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gymstream.errors import ToolError
from gymstream.nemo_gym.servers.tool_answers import (
    NOT_FOUND_TEXT,
    ToolText,
    decode_arguments,
    invalid_arguments_text,
    tool_output_text,
)
from gymstream.rollout.environment import AnyEnvironment, Environment, SessionEnvironment

__all__ = ["InProcess", "Served", "Sessions", "sessions_of"]

logger = logging.getLogger("gymstream.rollout.loop")


class Sessions(Protocol):
    """What the agent loop needs from an environment, per rollout.

    ``call_tool`` returns the ``function_call_output`` text and whether the call succeeded
    (a model's mistake is text it sees, never an exception); ``verify`` returns the verifier's
    fields (at least ``reward``).
    """

    @property
    def name(self) -> str: ...

    async def seed(self, row: dict[str, Any]) -> Any: ...

    async def call_tool(self, session: Any, call: Mapping[str, Any]) -> tuple[str, bool]: ...

    async def verify(
        self, session: Any, row: dict[str, Any], response: dict[str, Any]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class InProcess:
    """A native environment: its tools and verifier run in this process."""

    env: Environment

    @property
    def name(self) -> str:
        return self.env.name

    async def seed(self, row: dict[str, Any]) -> Any:
        return self.env.new_session(row)

    async def call_tool(self, session: Any, call: Mapping[str, Any]) -> tuple[str, bool]:
        return await _call_tool(self.env, session, call)

    async def verify(
        self, session: Any, row: dict[str, Any], response: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.env.verify(row, response)


@dataclass(frozen=True)
class Served:
    """An environment behind a server: the server's text for every call (its 4xx bodies too)."""

    env: SessionEnvironment

    @property
    def name(self) -> str:
        return self.env.name

    async def seed(self, row: dict[str, Any]) -> Any:
        return await self.env.seed(row)

    async def call_tool(self, session: Any, call: Mapping[str, Any]) -> tuple[str, bool]:
        return await self.env.call_tool(session, call.get("name", ""), call.get("arguments")), True

    async def verify(
        self, session: Any, row: dict[str, Any], response: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.env.verify_session(session, row, response)


def sessions_of(env: AnyEnvironment) -> Sessions:
    """The adapter for an environment object a caller hands to ``run_rollout`` (tests, bench);
    the worker picks its adapter from the agent's configuration instead."""
    if isinstance(env, SessionEnvironment):
        return Served(env)
    return InProcess(env)


async def _call_tool(env: Environment, session: Any, item: Mapping[str, Any]) -> tuple[str, bool]:
    """Run one function call; returns (output text, ok). Never raises for the model's mistakes.

    The texts are NeMo Gym's (``tool_answers``): arguments ``json.loads`` rejects, an unknown
    tool (404 body), a tool's ``ToolText`` (e.g. a 422 body from ``typed_tool``) or its result
    as compact JSON. Arguments that decode to a non-object reach the tool, as they reach NeMo
    Gym's server (whose pydantic model rejects them).
    """
    name = item.get("name")
    try:
        arguments = decode_arguments(item.get("arguments"))
    except (json.JSONDecodeError, TypeError) as exc:
        return invalid_arguments_text(exc), False
    except RecursionError:  # NeMo Gym's agent would crash; the model sees it and may recover
        return f"Error: the arguments for tool {name!r} are nested too deeply to read", False
    tool = env.tools.get(name) if isinstance(name, str) else None
    if tool is None:
        return NOT_FOUND_TEXT, False
    try:
        result = tool(session, arguments)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # boundary: the model must see the failure and may recover
        logger.warning(
            "tool %r of environment %r raised %s: %s (arguments %r); the model sees the error",
            name,
            env.name,
            type(exc).__name__,
            exc,
            item.get("arguments"),
        )
        return f"Error: tool {name!r} failed: {type(exc).__name__}: {exc}", False
    if isinstance(result, ToolText):
        return result.text, False
    try:
        return tool_output_text(result), True
    except (TypeError, ValueError) as exc:
        raise ToolError(
            f"tool {name!r} of environment {env.name!r} returned a result that is not "
            f"JSON-serialisable ({type(result).__name__}): {exc}"
        ) from exc
