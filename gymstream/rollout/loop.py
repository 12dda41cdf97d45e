"""The agent loop (NeMo Gym's simple_agent): model call, tool calls, max steps, then verify.

Pure async, no Kafka: ``run_rollout(row, env, model, model_name=...)`` runs one rollout and
returns the NeMo Gym verifier result plus timings. It follows the contract step by step:

1. seed the environment's session with the row;
2. call the model with ``input`` + every output item so far, append the model's output items;
3. stop when the turn has no ``function_call``, when the response is ``incomplete``, or after
   ``max_steps`` model calls (a turn with neither a ``function_call`` nor an assistant
   ``message`` ends the rollout ``incomplete`` with simple_agent's ``ng_termination_reason``
   ``empty_output`` / ``incomplete_reasoning`` and its message in the response's metadata);
   otherwise run each function call against the tool of that name and append a
   ``function_call_output`` (NeMo Gym's text for it: ``tool_answers``). The tools of the last
   turn run before the ``max_steps`` stop, as in NeMo Gym, so every call in the trajectory has
   its output.
4. verify the whole-trajectory Response (``output`` = every item of every turn, ``usage`` summed);
   with NeMo Gym's ``skip_verification``, no verify call: the configured reward and
   ``verification_skipped: true``.

``max_steps``: NeMo Gym's unset means unlimited; we cap at ``DEFAULT_MAX_STEPS`` (16) model calls
so a model that never stops calling tools cannot run forever.

Errors: model errors propagate unchanged (``ModelCallError`` / ``ModelResponseError``); a verifier
that raises becomes ``VerifierError`` (chained); bad tool arguments, unknown tools and tools that
raise become error text the model sees (the loop goes on), and tool exceptions are logged.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from gymstream.errors import GymstreamError, RowError, ToolError, VerifierError
from gymstream.nemo_gym.outputs.output_row import PARAMS, verify_result
from gymstream.nemo_gym.outputs.result import RolloutResult
from gymstream.nemo_gym.outputs.token_ids import prefix_breaks
from gymstream.nemo_gym.servers.tool_answers import (
    NOT_FOUND_TEXT,
    ToolText,
    decode_arguments,
    invalid_arguments_text,
    tool_output_text,
)
from gymstream.rollout.environment import AnyEnvironment, Environment, SessionEnvironment
from gymstream.rollout.model.client import ModelClient
from gymstream.rollout.model.spread import model_session

__all__ = ["DEFAULT_MAX_STEPS", "RolloutResult", "run_rollout", "sum_usage"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 16
SKIPPED = "verification_skipped"
"""Model calls per rollout when the agent config sets none (NeMo Gym: unlimited)."""


def sum_usage(usages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Sum Responses usage objects field by field (nested details too); None when there are none."""
    total: dict[str, Any] | None = None
    for usage in usages:
        total = usage_add(total or {}, usage)
    return total


def usage_add(into: dict[str, Any], usage: Mapping[str, Any]) -> dict[str, Any]:
    """Add numeric fields of ``usage`` into ``into`` (recursing into nested dicts); returns it.

    A null count (not reported) makes the sum null: an unknown count is not a measured 0."""
    for key, value in usage.items():
        kind = type(value)
        if value is None or (key in into and into[key] is None):
            into[key] = None  # an unknown count stays unknown (NeMo Gym's accumulate rule)
        elif kind is int or kind is float:  # bool is not a number here
            previous = into.get(key)
            into[key] = (previous if type(previous) in (int, float) else 0) + value
        elif kind is dict or (kind is not bool and isinstance(value, Mapping)):
            nested = into.get(key)
            into[key] = usage_add(nested if type(nested) is dict else {}, value)
    return into


def _input_items(params: Mapping[str, Any]) -> list[Any]:
    value = params.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return value
    raise RowError("<row>", 0, "responses_create_params.input", "must be a string or a list")


TERMINATION_MESSAGE = (
    "Ending trajectory: model returned no assistant message or tool calls "
    "(reasoning-only or empty output) without reported truncation. "
    "This is the stop-token case (finish_reason='stop'), not length truncation "
    "(finish_reason='length', handled separately via incomplete_details). "
    "This indicates either a badly trained model requiring training-level fixes "
    "or a bug in the inference engine."
)
"""simple_agent 0.7.0's ``ng_termination_message``, word for word (trainers may match on it)."""


def _is_assistant_message(item: Any) -> bool:
    return (
        isinstance(item, dict) and item.get("type") == "message" and item.get("role") == "assistant"
    )


def _ended_incomplete(response: dict[str, Any], turn_items: list[Any]) -> dict[str, Any]:
    """simple_agent's end of a turn with neither a tool call nor an assistant message: the
    response becomes ``incomplete`` with ``ng_termination_*`` metadata (logged, as NeMo Gym)."""
    reason = "incomplete_reasoning" if turn_items else "empty_output"
    logger.info("rollout ended %s: %s", reason, TERMINATION_MESSAGE)
    metadata = response.get("metadata")
    return {
        **response,
        "status": "incomplete",
        "metadata": {
            **(metadata if isinstance(metadata, dict) else {}),
            "ng_termination_reason": reason,
            "ng_termination_message": TERMINATION_MESSAGE,
        },
    }


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


async def run_rollout(
    row: dict[str, Any],
    env: AnyEnvironment,
    model: ModelClient,
    *,
    model_name: str,
    max_steps: int = DEFAULT_MAX_STEPS,
    overrides: Mapping[str, Any] | None = None,
    skip_verification_reward: float | None = None,
) -> RolloutResult:
    """Run one rollout of ``row`` in ``env`` with ``model``; see the module docstring.

    ``overrides`` are merged key by key over ``row["responses_create_params"]``; ``model`` is
    then set to ``model_name``. Raises ``RowError`` when the row has no request object,
    ``ModelCallError``/``ModelResponseError`` from the model, ``VerifierError`` from the verifier,
    ``ToolError`` when a tool returns something that cannot be JSON-encoded (an environment bug).
    Every model call of the rollout is one ``model_session`` (one server of several).
    ``skip_verification_reward`` set: NeMo Gym's ``skip_verification`` (no verify call; that
    reward and ``verification_skipped: true``).
    """
    with model_session():
        return await _run(
            row, env, model, model_name, max_steps, overrides, skip_verification_reward
        )


async def _run(
    row: dict[str, Any],
    env: AnyEnvironment,
    model: ModelClient,
    model_name: str,
    max_steps: int,
    overrides: Mapping[str, Any] | None,
    skip_verification_reward: float | None,
) -> RolloutResult:
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    row_params = row.get(PARAMS)
    if not isinstance(row_params, dict):
        raise RowError("<row>", 0, PARAMS, "missing or not a JSON object")
    params: dict[str, Any] = {**row_params, **(overrides or {}), "model": model_name}
    inputs = _input_items(params)

    served: SessionEnvironment | None = None
    native: Environment | None = None
    if isinstance(env, SessionEnvironment):
        served, session = env, await env.seed(row)
    else:
        native, session = env, env.new_session(row)
    outputs: list[Any] = []
    usages: list[dict[str, Any]] = []
    model_s = tools_s = 0.0
    turns = tool_calls = tool_errors = 0
    response: dict[str, Any] = {}
    while True:
        started = time.perf_counter()
        response = await model.create({**params, "input": inputs + outputs})
        model_s += time.perf_counter() - started
        turns += 1
        turn_items = response.get("output") or []
        outputs.extend(turn_items)
        usage = response.get("usage")
        if isinstance(usage, dict):
            usages.append(usage)
        if response.get("status") == "incomplete":
            break
        calls = [i for i in turn_items if isinstance(i, dict) and i.get("type") == "function_call"]
        if not calls:
            if not any(_is_assistant_message(i) for i in turn_items):
                response = _ended_incomplete(response, turn_items)
            break
        started = time.perf_counter()
        for call in calls:
            if native is not None:
                text, ok = await _call_tool(native, session, call)
            elif served is not None:
                text = await served.call_tool(session, call.get("name", ""), call.get("arguments"))
                ok = True
            tool_calls += 1
            tool_errors += not ok
            outputs.append(
                {"type": "function_call_output", "call_id": call.get("call_id"), "output": text}
            )
        tools_s += time.perf_counter() - started
        if turns >= max_steps:
            break

    final = {**response, "output": outputs, "usage": sum_usage(usages)}
    started = time.perf_counter()
    try:
        if skip_verification_reward is not None:  # simple_agent's skip_verification
            fields = {"reward": skip_verification_reward, SKIPPED: True}
        elif native is not None:
            fields = await native.verify(row, final)
        elif served is not None:
            fields = await served.verify_session(session, row, final)
    except GymstreamError:
        raise  # already typed (a server's failure)
    except Exception as exc:  # boundary: any verifier bug becomes a typed, non-retriable failure
        raise VerifierError(
            f"verifier of environment {env.name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    verify_s = time.perf_counter() - started
    reward = fields.get("reward") if isinstance(fields, dict) else None
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        raise VerifierError(
            f"verifier of environment {env.name!r} returned no numeric 'reward': {fields!r:.200}"
        )

    result = verify_result(
        row,
        params=params,
        response=final,
        reward=float(reward),
        fields=fields,
        token_prefix_breaks=prefix_breaks(outputs),
    )
    return RolloutResult(
        verify_result=result,
        timings={"model_s": model_s, "tools_s": tools_s, "verify_s": verify_s},
        turns=turns,
        tool_calls=tool_calls,
        tool_errors=tool_errors,
    )
