"""The text a function call gets back, exactly as NeMo Gym 0.7.0 writes it for a native tool.

NeMo Gym's ``simple_agent`` decodes the call's arguments with ``json.loads`` (a failure becomes
``json.dumps({"error": f"Invalid tool call arguments: {e!r}"})``), POSTs them to the resources
server's ``/<tool name>`` and hands the raw response body to the model, whatever the status. The
server is FastAPI with a pydantic model per tool: an answer is compact JSON with UTF-8 kept
(``{"city":"sf",...}``), a schema violation a 422 ``{"detail":[...]}`` with pydantic's errors
under ``loc: ["body", ...]``, an unknown tool a 404 ``{"detail":"Not Found"}``. Native tools say
the same: ``typed_tool(Model, fn)`` validates with the tool's pydantic model as FastAPI does.
(Recordings of the real texts: /work/shared/nemo-gym-protocol/stc_0[2-6]*.json.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

__all__ = [
    "NOT_FOUND_TEXT",
    "ToolText",
    "decode_arguments",
    "invalid_arguments_text",
    "tool_output_text",
    "typed_tool",
    "validation_error_text",
]

NOT_FOUND_TEXT = '{"detail":"Not Found"}'
"""What a resources server answers for a tool it does not have (FastAPI's 404 body)."""

Body = TypeVar("Body", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class ToolText:
    """A tool's answer given as the exact text (an error body): used verbatim, counted as failed."""

    text: str


def tool_output_text(result: Any) -> str:
    """A tool result as FastAPI's JSON response body: compact separators, non-ASCII kept as is.

    ``ValueError`` for NaN or infinity (FastAPI refuses them too), ``TypeError`` for what JSON
    cannot hold; a pydantic model is dumped first, as FastAPI does with a response model.
    """
    if isinstance(result, pydantic.BaseModel):
        result = result.model_dump(mode="json")
    return json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def decode_arguments(raw: Any) -> Any:
    """``json.loads`` of a call's ``arguments``, as simple_agent does it (no special cases: an
    empty string or a missing value fails). Raises ``json.JSONDecodeError`` or ``TypeError``."""
    return json.loads(raw)


def invalid_arguments_text(exc: Exception) -> str:
    """simple_agent's output for arguments ``json.loads`` rejects (``json.dumps`` defaults)."""
    return json.dumps({"error": f"Invalid tool call arguments: {exc!r}"})


def validation_error_text(exc: pydantic.ValidationError) -> str:
    """FastAPI's 422 body for a request body that fails its pydantic model."""
    detail = [{**error, "loc": ["body", *error["loc"]]} for error in exc.errors(include_url=False)]
    return json.dumps({"detail": detail}, ensure_ascii=False, separators=(",", ":"), default=str)


_MISSING_BODY = json.dumps(
    {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]},
    separators=(",", ":"),
)


def typed_tool(model: type[Body], fn: Callable[[Any, Body], Any]) -> Callable[[Any, Any], Any]:
    """A tool ``(session, arguments)`` that validates ``arguments`` with ``model`` first.

    Valid: ``fn(session, body)``'s result. Invalid: the 422 text NeMo Gym's server would send
    (``null`` arguments: simple_agent sends no body, so FastAPI's "body missing" error).
    """

    def tool(session: Any, arguments: Any) -> Any:
        if arguments is None:
            return ToolText(_MISSING_BODY)
        try:
            body = model.model_validate(arguments, from_attributes=True)  # as FastAPI does
        except pydantic.ValidationError as exc:
            return ToolText(validation_error_text(exc))
        return fn(session, body)

    tool.__name__ = getattr(fn, "__name__", "tool")
    tool.__doc__ = fn.__doc__
    return tool
