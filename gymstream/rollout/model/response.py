"""A Chat Completions answer -> a Responses API ``Response`` object, shaped as NeMo Gym's.

NeMo Gym 0.7.0's converter (``nemo_gym.responses_converter.chat_completion_to_response``, behind
its ``vllm_model``) fixes the shape a trainer and a verifier see, so this module builds exactly
that object, key for key:

- every top-level key of NeMo Gym's ``Response`` is present; the request's ``tool_choice``,
  ``parallel_tool_calls``, ``tools``, ``temperature``, ``top_p``, ``background``,
  ``max_output_tokens``, ``max_tool_calls``, ``previous_response_id``, ``prompt``,
  ``reasoning``, ``service_tier``, ``text``, ``top_logprobs``, ``truncation``, ``metadata``,
  ``instructions`` and ``user`` are echoed, the rest are null (``metadata`` too when the request
  had none: null, never ``{}``); ``created_at`` is the answer's ``created``;
- output items: a ``reasoning`` item (``summary_text`` parts; ``content`` and
  ``encrypted_content`` null, no status), a ``message`` item (``phase`` null) whose
  ``output_text`` part has ``logprobs`` null, and one ``function_call`` item per tool call whose
  ``id`` *is* the server's tool-call id (``call_id`` too), as NeMo Gym builds them;
- usage: prompt/completion/total tokens as the server reports them; ``cached_tokens`` and
  ``reasoning_tokens`` are null unless reported (an unknown count is not a measured 0);
- ids: ``resp_``/``rs_``/``msg_`` + 32 hex digits, as NeMo Gym's (``uuid4().hex``); here
  derived from the answer's own id (a name-based UUID), so one answer always converts to the
  same object (the scripted test model stays deterministic), random when the answer has none.

Reasoning: for a NeMo Gym ``vllm_model`` with ``uses_reasoning_parser``, the server's field and
every ``<think>`` tag become summary texts (``nemo_gym.servers.vllm_model.reasoning_texts``);
without a vllm_model, the server's ``reasoning_content`` becomes one ``reasoning_text`` part.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from gymstream.errors import ModelResponseError
from gymstream.nemo_gym.servers.vllm_model import reasoning_texts
from gymstream.settings import VllmOptions
from gymstream.wire.messages import FailureClass

__all__ = ["chat_to_response", "usage_from_chat"]

# the request keys NeMo Gym's Response echoes; every other Response key is null
_ECHOED = (
    "background",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "metadata",
    "previous_response_id",
    "prompt",
    "reasoning",
    "service_tier",
    "temperature",
    "text",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
)
_NULL = (
    "completed_at",
    "conversation",
    "error",
    "moderation",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
)
_TOOL_DEFAULTS = {"defer_loading": None, "description": None, "parameters": None, "strict": None}


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _detail(usage: Mapping[str, Any], group: str, name: str, *aliases: str) -> int | None:
    details = usage.get(group)
    found = _count(details.get(name)) if isinstance(details, Mapping) else None
    for alias in aliases:
        found = found if found is not None else _count(usage.get(alias))
    return found


def usage_from_chat(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage -> Responses usage, as NeMo Gym reads it (details null unless reported)."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = _detail(
        usage, "prompt_tokens_details", "cached_tokens", "cached_input_tokens",
        "cache_read_input_tokens",
    )  # fmt: skip
    reasoning = _detail(
        usage, "completion_tokens_details", "reasoning_tokens", "reasoning_output_tokens"
    )
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def _ids(chat: Mapping[str, Any]) -> Callable[[str], str]:
    """``prefix -> prefix_<32 hex>``, a name-based UUID of the answer's id and the prefix."""
    base = chat.get("id")
    if not base:
        return lambda prefix: f"{prefix}_{uuid.uuid4().hex}"
    return lambda prefix: f"{prefix}_{uuid.uuid5(uuid.NAMESPACE_URL, f'{base}/{prefix}').hex}"


def _message_item(text: str, new_id: Callable[[str], str]) -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "phase": None,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": None}],
    }


def _reasoning_item(
    message: Mapping[str, Any], vllm: VllmOptions | None, new_id: Callable[[str], str]
) -> Any:
    """(the turn's reasoning item or None, its content)."""
    item: dict[str, Any] = {"id": new_id("rs"), "type": "reasoning", "summary": []}
    item |= {"content": None, "encrypted_content": None}
    if vllm is not None and vllm.uses_reasoning_parser:
        texts, content = reasoning_texts(dict(message))
        if not texts:
            return None, content
        item["summary"] = [{"type": "summary_text", "text": t} for t in texts]
        return item, content
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if not reasoning:
        return None, message.get("content")
    item["content"] = [{"type": "reasoning_text", "text": reasoning}]
    return item, message.get("content")


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return msgspec.json.encode(arguments).decode()


def _call_item(call: Mapping[str, Any], index: int, new_id: Callable[[str], str]) -> dict[str, Any]:
    function = call.get("function") or {}
    call_id = call.get("id") or new_id(f"call_{index}")  # NeMo Gym requires the server's id
    return {
        "id": call_id,
        "type": "function_call",
        "call_id": call_id,
        "name": function.get("name") or "",
        "arguments": _arguments_text(function.get("arguments") or ""),
        "namespace": None,
        "status": "completed",
    }


def _output(
    chat: Mapping[str, Any],
    message: Mapping[str, Any],
    tokens: Mapping[str, Any] | None,
    vllm: VllmOptions | None,
) -> list[dict[str, Any]]:
    new_id = _ids(chat)
    output: list[dict[str, Any]] = []
    reasoning, content = _reasoning_item(message, vllm, new_id)
    if reasoning is not None:
        output.append(reasoning)
    if isinstance(content, list):  # chat content parts
        content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    if content:
        output.append(_message_item(content, new_id))
    calls = message.get("tool_calls") or []
    output.extend(_call_item(call, i, new_id) for i, call in enumerate(calls))
    if not output and (tokens is not None or vllm is not None):
        output.append(_message_item("", new_id))  # as NeMo Gym's converter does
    if tokens is not None:
        output[-1].update(tokens)
    return output


def _tools(tools: Any) -> list[Any]:
    return [
        _TOOL_DEFAULTS | tool if isinstance(tool, dict) and tool.get("type") == "function" else tool
        for tool in tools or []
    ]


def chat_to_response(
    chat: Mapping[str, Any],
    request: Mapping[str, Any],
    tokens: Mapping[str, Any] | None = None,
    vllm: VllmOptions | None = None,
) -> dict[str, Any]:
    """A Chat Completions answer to the Responses ``request`` -> NeMo Gym's ``Response`` dict.

    ``tokens`` (the turn's token fields) go last on the last output item, as NeMo Gym puts them;
    ``vllm``: the options of a NeMo Gym vllm_model (reasoning parsing, an empty turn's message).
    Raises ``ModelResponseError`` (failure_class ``model_malformed_response``) when
    ``choices[0].message`` is missing.
    """
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict) or not isinstance(choice, dict):
        raise ModelResponseError(
            "chat completion has no choices[0].message",
            failure_class=FailureClass.MODEL_MALFORMED_RESPONSE,
        )
    incomplete: dict[str, Any] | None = None
    if choice.get("finish_reason") in ("length", "content_filter"):
        reason = choice["finish_reason"]
        incomplete = {"reason": "max_output_tokens" if reason == "length" else reason}
    created = chat.get("created")
    response: dict[str, Any] = dict.fromkeys(_NULL)
    response |= {key: request.get(key) for key in _ECHOED}
    response |= {
        "id": _ids(chat)("resp"),
        "object": "response",
        "created_at": float(created if isinstance(created, int | float) else time.time()),
        "model": chat.get("model") or request.get("model") or "",
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": incomplete,
        "output": _output(chat, message, tokens, vllm),
        "parallel_tool_calls": request.get("parallel_tool_calls", True) is not False,
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": _tools(request.get("tools")),
        "usage": usage_from_chat(chat.get("usage")),
    }
    return response
