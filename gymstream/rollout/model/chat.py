"""Convert between Responses API bodies and Chat Completions bodies (both directions we need).

The agent loop always speaks the Responses API. For endpoints that only serve Chat Completions
(vLLM serves it best), ``responses_to_chat_request`` turns a Responses request into a chat request
and ``chat_to_response`` turns the chat answer back into a Responses ``Response`` object, so the
trajectory a trainer sees has the same shape whichever API the model spoke.

Mapping (what a caller must know):
- ``instructions`` becomes a leading system message; role ``developer`` becomes ``system`` (most
  open-model chat templates know only system/user/assistant/tool), but for a NeMo Gym
  vllm_model, which sends ``developer`` unless ``replace_developer_role_with_system``.
- ``function_call`` items become ``tool_calls`` of an assistant message (merged into the assistant
  message just before them, as one turn); ``function_call_output`` items become ``tool`` messages.
- ``reasoning`` items are dropped from the prompt (chat servers do not take them back), but for
  a NeMo Gym vllm_model (``vllm``), which sends their summaries back as ``<think>`` text.
- ``max_output_tokens`` -> ``max_tokens``; ``reasoning.effort`` -> ``reasoning_effort``;
  ``text.format`` -> ``response_format``; function tools are re-nested under ``function``.
- Responses-only keys (store, include, truncation, metadata, ...) are dropped; unknown keys pass
  through (vLLM takes extras such as ``top_k``). Keys whose value is null are left out.
- Back: ``reasoning_content``/``reasoning`` -> a ``reasoning`` item, content -> a ``message`` item
  with one ``output_text`` part, each tool call -> a ``function_call`` item; finish_reason
  ``length`` -> status ``incomplete`` (reason ``max_output_tokens``); usage prompt/completion
  tokens -> input/output tokens.
- Token ids (``token_ids=True`` / ``tokens``, see ``model.tokens``): the three fields of a turn's
  last output item ride back on the assistant message of that turn (as NeMo Gym's converter
  does); an answer's fields go on the last output item it produces (an empty ``message`` item
  when it produced none).
- A NeMo Gym ``vllm_model`` (``vllm`` options): a turn with no output at all becomes one empty
  ``message`` item, and with ``uses_reasoning_parser`` the reasoning (the server's field and any
  ``<think>`` tags in the content) becomes a ``reasoning`` item of ``summary_text`` parts, as
  NeMo Gym's converter makes them (``model.vllm``).
Unsupported requests (streaming, non-function tools, unknown item types) raise
``ModelResponseError`` with failure_class ``model_request_unsupported``: retrying cannot help.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from gymstream.errors import ModelResponseError
from gymstream.nemo_gym.outputs.token_ids import PROMPT_TOKEN_IDS, ROUTED_EXPERTS, TOKEN_FIELDS
from gymstream.nemo_gym.servers.vllm_model import add_assistant, fold_reasoning, reasoning_texts
from gymstream.settings import VllmOptions
from gymstream.wire.messages import FailureClass

__all__ = ["chat_to_response", "responses_to_chat_request", "usage_from_chat"]

_UNSUPPORTED = FailureClass.MODEL_REQUEST_UNSUPPORTED

# Responses-only request keys with no Chat Completions meaning.
_DROPPED_KEYS = frozenset(
    {
        "background",
        "conversation",
        "include",
        "instructions",
        "max_tool_calls",
        "metadata",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "safety_identifier",
        "store",
        "truncation",
        "input",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "reasoning",
        "text",
        "parallel_tool_calls",
        "stream",
        "top_logprobs",
    }
)

_TEXT_PART_TYPES = frozenset({"input_text", "output_text", "text", "summary_text"})


def _unsupported(problem: str) -> ModelResponseError:
    return ModelResponseError(
        f"cannot convert this Responses request to Chat Completions: {problem}",
        failure_class=_UNSUPPORTED,
    )


def _content_to_chat(content: Any) -> Any:
    """Responses message content (a string or parts) -> chat content (a string or parts)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _unsupported(f"message content must be a string or a list, got {type(content)}")
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    only_text = True
    for part in content:
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES:
            texts.append(part.get("text") or "")
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "refusal":
            texts.append(part.get("refusal") or "")
            parts.append({"type": "text", "text": part.get("refusal") or ""})
        elif kind == "input_image":
            only_text = False
            url = part.get("image_url")
            if not url:
                raise _unsupported("input_image parts need image_url (file_id is not supported)")
            image: dict[str, Any] = {"url": url}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise _unsupported(f"content part type {kind!r}")
    return "".join(texts) if only_text else parts


def _carry_tokens(item: Mapping[str, Any], messages: list[dict[str, Any]]) -> None:
    """Put a turn's token fields (on its last item) on the assistant message it became."""
    if PROMPT_TOKEN_IDS in item and messages and messages[-1]["role"] == "assistant":
        for key in (*TOKEN_FIELDS, ROUTED_EXPERTS):
            if item.get(key) is not None:
                messages[-1][key] = item[key]


def _messages(
    params: Mapping[str, Any], token_ids: bool = False, vllm: VllmOptions | None = None
) -> list[dict[str, Any]]:
    think = vllm is not None  # NeMo Gym's converter: one message per turn, reasoning sent back
    keep_developer = vllm is not None and not vllm.replace_developer_role_with_system
    messages: list[dict[str, Any]] = []
    instructions = params.get("instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    items = params.get("input")
    if items is None:
        items = []
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    for item in items:
        kind = item.get("type")
        if kind is None or kind == "message":
            role = item.get("role")
            if role == "developer" and not keep_developer:
                role = "system"
            if role not in ("system", "user", "assistant", "developer"):
                raise _unsupported(f"message role {item.get('role')!r}")
            content = _content_to_chat(item.get("content"))
            if think and role == "assistant":
                add_assistant(messages, content)
            else:
                messages.append({"role": role, "content": content})
        elif kind == "function_call":
            if not item.get("call_id") or not item.get("name"):
                raise _unsupported("a function_call item without call_id or name")
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments") or ""},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not item.get("call_id"):
                raise _unsupported("a function_call_output item without call_id")
            output = item.get("output")
            if not isinstance(output, str):
                output = _content_to_chat(output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        elif kind == "reasoning":
            if think:
                fold_reasoning(item, messages)
            continue
        else:
            raise _unsupported(f"input item type {kind!r}")
        if token_ids:
            _carry_tokens(item, messages)
    return messages


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted = []
    for tool in tools:
        if tool.get("type") != "function":
            raise _unsupported(f"tool type {tool.get('type')!r} (only function tools)")
        function: dict[str, Any] = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _response_format(text: Mapping[str, Any]) -> dict[str, Any] | None:
    fmt = text.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": fmt["type"]}


def responses_to_chat_request(
    params: Mapping[str, Any], *, token_ids: bool = False, vllm: VllmOptions | None = None
) -> dict[str, Any]:
    """A Responses API request body -> the equivalent Chat Completions request body.

    ``token_ids``: carry each turn's token fields back on its assistant message. ``vllm`` (a
    NeMo Gym vllm_model), as NeMo Gym's converter does: each turn's items make one assistant
    message and its reasoning summaries go back as ``<think>`` text
    (``model.vllm.fold_reasoning``), and ``developer`` stays ``developer`` (unless
    ``replace_developer_role_with_system``); else reasoning items are left out.

    Raises ``ModelResponseError`` (failure_class ``model_request_unsupported``) for what has no
    chat equivalent: streaming, ``previous_response_id``, non-function tools, unknown items.
    """
    if params.get("stream"):
        raise _unsupported("streaming (stream=true)")
    if params.get("previous_response_id"):
        raise _unsupported("previous_response_id (server-side conversation state)")
    chat: dict[str, Any] = {}
    for key, value in params.items():
        if key not in _DROPPED_KEYS and value is not None:
            chat[key] = value
    chat["messages"] = _messages(params, token_ids, vllm)
    tools = params.get("tools")
    if tools:
        chat["tools"] = _tools(tools)
        if params.get("tool_choice") is not None:
            chat["tool_choice"] = _tool_choice(params["tool_choice"])
        if params.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = params["parallel_tool_calls"]
    if params.get("max_output_tokens") is not None:
        chat["max_tokens"] = params["max_output_tokens"]
    reasoning = params.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat["reasoning_effort"] = reasoning["effort"]
    text = params.get("text")
    if isinstance(text, dict):
        response_format = _response_format(text)
        if response_format is not None:
            chat["response_format"] = response_format
    if params.get("top_logprobs"):
        chat["logprobs"] = True
        chat["top_logprobs"] = params["top_logprobs"]
    return chat


def usage_from_chat(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage (prompt/completion tokens) -> Responses usage (input/output tokens)."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return msgspec.json.encode(arguments).decode()


def _message_item(base_id: str, text: str) -> dict[str, Any]:
    return {
        "id": f"msg_{base_id}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _reasoning_item(base_id: str, message: dict[str, Any], vllm: VllmOptions | None) -> Any:
    """(the turn's reasoning item or None, its content): vllm_model's summary texts with
    ``uses_reasoning_parser``, else the server's reasoning field as reasoning text."""
    if vllm is not None and vllm.uses_reasoning_parser:
        texts, content = reasoning_texts(message)
        if not texts:
            return None, content
        summary = [{"type": "summary_text", "text": t} for t in texts]
        return {"id": f"rs_{base_id}", "type": "reasoning", "summary": summary}, content
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if not reasoning:
        return None, message.get("content")
    item = {
        "id": f"rs_{base_id}",
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": reasoning}],
    }
    return item, message.get("content")


def chat_to_response(
    chat: Mapping[str, Any],
    request: Mapping[str, Any],
    tokens: Mapping[str, Any] | None = None,
    vllm: VllmOptions | None = None,
) -> dict[str, Any]:
    """A Chat Completions answer -> a Responses API ``Response`` object (as a dict).

    ``tokens`` (the turn's token fields) go last on the last output item, as NeMo Gym puts them.

    ``request`` is the Responses request it answers; its tools, tool_choice, temperature, ...
    are echoed as the Responses API does. Raises ``ModelResponseError`` (failure_class
    ``model_malformed_response``) when ``choices[0].message`` is missing.
    """
    choices = chat.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices else None
    if not isinstance(message, dict):
        raise ModelResponseError(
            "chat completion has no choices[0].message",
            failure_class=FailureClass.MODEL_MALFORMED_RESPONSE,
        )
    base_id = str(chat.get("id") or uuid.uuid4().hex)
    output: list[dict[str, Any]] = []
    reasoning, content = _reasoning_item(base_id, message, vllm)
    if reasoning is not None:
        output.append({**reasoning, "status": "completed"})
    if content:
        if isinstance(content, list):  # chat content parts
            content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
        output.append(_message_item(base_id, content))
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        call_id = call.get("id") or f"call_{base_id}_{index}"
        output.append(
            {
                "id": f"fc_{base_id}_{index}",
                "type": "function_call",
                "call_id": call_id,
                "name": function.get("name") or "",
                "arguments": _arguments_text(function.get("arguments") or ""),
                "status": "completed",
            }
        )
    if not output and (tokens is not None or vllm is not None):
        output.append(_message_item(base_id, ""))  # as NeMo Gym's converter does
    if tokens is not None:
        output[-1].update(tokens)
    finish = choices[0].get("finish_reason") if isinstance(choices, list) else None
    incomplete: dict[str, Any] | None = None
    if finish == "length":
        incomplete = {"reason": "max_output_tokens"}
    elif finish == "content_filter":
        incomplete = {"reason": "content_filter"}
    return {
        "id": f"resp_{base_id}",
        "object": "response",
        "created_at": float(chat.get("created") or time.time()),
        "model": chat.get("model") or request.get("model") or "",
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": incomplete,
        "instructions": request.get("instructions"),
        "metadata": request.get("metadata") or {},
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True) is not False,
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "max_output_tokens": request.get("max_output_tokens"),
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "usage": usage_from_chat(chat.get("usage")),
    }
