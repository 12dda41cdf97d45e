"""Check a decoded NeMo Gym row: the first problem as (field, what to do), or its agent.

The row reader (``rows.read_rows``) turns a problem into a ``RowError`` with file and line.
Optional request keys that hold ``null`` count as unset, as in the OpenAI API. A row's agent is
``agent_ref.name``; the default agent serves only rows with no ``agent_ref``.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["LINE_FIELD", "PARAMS_FIELD", "check_row", "resolve_agent"]

LINE_FIELD: Final = "<line>"
"""The field named by errors about the line as a whole (encoding, JSON syntax, size)."""
PARAMS_FIELD: Final = "responses_create_params"
"""The row's request to the model (a Responses API request object)."""

_MAX_LISTED_AGENTS: Final = 10
_MISSING: Final = object()


def _describe(value: Any) -> str:
    """Name a JSON value's kind for a message: 'an array', 'a string', '1.5', 'null'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_row(obj: Any) -> tuple[str, str] | None:
    """Return (field, problem) for the first structural problem of a decoded line, or None."""
    if not isinstance(obj, dict):
        return LINE_FIELD, (
            f"expected a JSON object, got {_describe(obj)}; each line must hold one row object"
        )
    params = obj.get(PARAMS_FIELD, _MISSING)
    if params is _MISSING:
        return PARAMS_FIELD, (
            'missing: every row needs the request to send to the model, e.g. {"input": "..."}'
        )
    if not isinstance(params, dict):
        return (
            PARAMS_FIELD,
            f"expected an object (the Responses API request), got {_describe(params)}",
        )
    return _check_input(params) or _check_tools(params) or _check_sampling(params)


def _check_input(params: dict[str, Any]) -> tuple[str, str] | None:
    field = f"{PARAMS_FIELD}.input"
    prompt = params.get("input", _MISSING)
    if prompt is _MISSING or prompt is None:
        return field, "missing: give the prompt as a string or a list of messages"
    if isinstance(prompt, str):
        return None
    if not isinstance(prompt, list):
        return field, f"expected a string or a list of messages, got {_describe(prompt)}"
    for i, item in enumerate(prompt):
        if not isinstance(item, dict):
            return f"{field}[{i}]", (
                'expected a message object such as {"role": "user", "content": "..."}, '
                f"got {_describe(item)}"
            )
    return None


def _check_tools(params: dict[str, Any]) -> tuple[str, str] | None:
    field = f"{PARAMS_FIELD}.tools"
    tools = params.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return field, f"expected a list of tool objects, got {_describe(tools)}"
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return f"{field}[{i}]", f"expected a tool object, got {_describe(tool)}"
        if tool.get("type", "function") != "function":
            continue
        name = tool.get("name", _MISSING)
        if name is _MISSING:
            return f"{field}[{i}].name", "missing: a function tool needs the name the model calls"
        if not isinstance(name, str) or not name:
            return f"{field}[{i}].name", f"expected a non-empty string, got {_describe(name)}"
    return None


def _check_sampling(params: dict[str, Any]) -> tuple[str, str] | None:
    temperature = params.get("temperature")
    if temperature is not None and not _is_number(temperature):
        return f"{PARAMS_FIELD}.temperature", (
            f"expected a number such as 0.7, got {_describe(temperature)}"
        )
    max_tokens = params.get("max_output_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        return f"{PARAMS_FIELD}.max_output_tokens", (
            f"expected an integer such as 1024, got {_describe(max_tokens)}"
        )
    return None


def resolve_agent(
    obj: dict[str, Any], default_agent: str | None, known: frozenset[str] | None
) -> str | tuple[str, str]:
    """Return the row's agent name, or (field, problem)."""
    ref = obj.get("agent_ref", _MISSING)
    source = ""
    if ref is _MISSING:
        if default_agent is None:
            return "agent_ref.name", "missing: add agent_ref to the row or pass --agent-name"
        agent = default_agent
        source = " (from --agent-name)"
    elif not isinstance(ref, dict):
        return (
            "agent_ref",
            f'expected an object such as {{"name": "<agent>"}}, got {_describe(ref)}',
        )
    else:
        name = ref.get("name", _MISSING)
        if name is _MISSING:
            return "agent_ref.name", "missing: agent_ref must name the agent that serves this row"
        if not isinstance(name, str) or not name:
            return "agent_ref.name", f"expected a non-empty agent name, got {_describe(name)}"
        agent = name
    if known is not None and agent not in known:
        return "agent_ref.name", f"unknown agent {agent!r}{source}; {_list_agents(known)}"
    return agent


def _list_agents(known: frozenset[str]) -> str:
    if not known:
        return "no agents are configured"
    names = sorted(known)
    listed = ", ".join(names[:_MAX_LISTED_AGENTS])
    more = len(names) - _MAX_LISTED_AGENTS
    suffix = f" and {more} more" if more > 0 else ""
    return f"known agents: {listed}{suffix}; fix the name or configure that agent"
