"""Convert a Responses API request into a Chat Completions request (``model.response``: back).

The agent loop always speaks the Responses API. For endpoints that only serve Chat Completions
(vLLM serves it best), ``responses_to_chat_request`` turns a Responses request into a chat
request, and ``model.response.chat_to_response`` turns the chat answer back into the Responses
``Response`` object NeMo Gym builds, so the trajectory a trainer sees has the same shape
whichever API the model spoke.

Mapping (what a caller must know):
- ``instructions`` becomes a leading system message; role ``developer`` becomes ``system`` (most
  open-model chat templates know only system/user/assistant/tool), but for a NeMo Gym
  vllm_model, which sends ``developer`` unless ``replace_developer_role_with_system``.
- ``function_call`` items become ``tool_calls`` of an assistant message (merged into the assistant
  message just before them, as one turn); ``function_call_output`` items become ``tool`` messages.
- ``reasoning`` items are dropped from the prompt (chat servers do not take them back), but for
  a NeMo Gym vllm_model (``vllm``), which sends their summaries back as ``<think>`` text.
- ``max_output_tokens`` -> ``max_tokens``; ``reasoning.effort`` -> ``reasoning_effort``;
  ``text.format`` -> ``response_format``, ``text.verbosity`` -> ``verbosity``; function tools
  are re-nested under ``function``.
- Responses-only keys (store, include, truncation, metadata, ...) are dropped; unknown keys pass
  through (vLLM takes extras such as ``top_k``). Keys whose value is null are left out.
- Token ids (``token_ids=True``, see ``model.tokens``): the three fields of a turn's last output
  item ride back on the assistant message of that turn (as NeMo Gym's converter does).
- A NeMo Gym ``vllm_model`` (``vllm`` options) gets NeMo Gym's converter exactly: a user,
  system, developer or tool message's content parts stay parts (``{"type": "text", ...}``: a
  chat template may render parts and a string differently), an assistant turn's texts join;
  ``instructions`` and the leading system/developer messages fold into one system message
  (joined by a blank line); ``metadata``, ``store``, ``prompt_cache_key``,
  ``safety_identifier`` and ``top_logprobs`` pass on as they are.
Unsupported requests (streaming, non-function tools, unknown item types) raise
``ModelResponseError`` with failure_class ``model_request_unsupported``: retrying cannot help.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gymstream.errors import ModelResponseError
from gymstream.nemo_gym.outputs.token_ids import PROMPT_TOKEN_IDS, ROUTED_EXPERTS, TOKEN_FIELDS
from gymstream.nemo_gym.servers.vllm_model import add_assistant, fold_instructions, fold_reasoning
from gymstream.settings import VllmOptions
from gymstream.wire.messages import FailureClass

__all__ = ["responses_to_chat_request"]

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

# Responses keys NeMo Gym's converter passes on to Chat Completions (both APIs know them)
_NEMO_GYM_KEPT = frozenset({"metadata", "prompt_cache_key", "safety_identifier", "store"})

_TEXT_PART_TYPES = frozenset({"input_text", "output_text", "text", "summary_text"})


def _unsupported(problem: str) -> ModelResponseError:
    return ModelResponseError(
        f"cannot convert this Responses request to Chat Completions: {problem}",
        failure_class=_UNSUPPORTED,
    )


def _content_to_chat(content: Any, parts: bool = False) -> Any:
    """Responses message content (a string or parts) -> chat content (a string or parts).

    ``parts`` (NeMo Gym's converter, for a non-assistant message): a list stays a list of chat
    parts, text parts as ``{"type": "text", ...}``, images with ``detail`` ``auto`` unless given;
    else text-only parts are joined into one string (images keep the list form)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _unsupported(f"message content must be a string or a list, got {type(content)}")
    texts: list[str] = []
    converted: list[dict[str, Any]] = []
    only_text = not parts
    for part in content:
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES:
            texts.append(part.get("text") or "")
            converted.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "refusal":
            texts.append(part.get("refusal") or "")
            converted.append({"type": "text", "text": part.get("refusal") or ""})
        elif kind == "input_image":
            only_text = False
            url = part.get("image_url")
            if isinstance(url, dict):
                url = url.get("url")
            if not url:
                raise _unsupported("input_image parts need image_url (file_id is not supported)")
            image: dict[str, Any] = {"url": url}
            if part.get("detail") or parts:
                image["detail"] = part.get("detail") or "auto"
            converted.append({"type": "image_url", "image_url": image})
        else:
            raise _unsupported(f"content part type {kind!r}")
    return "".join(texts) if only_text else converted


def _text_of(content: Any) -> str:
    """The text of chat content (a string or text parts), as NeMo Gym reads it."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def _carry_tokens(item: Mapping[str, Any], messages: list[dict[str, Any]]) -> None:
    """Put a turn's token fields (on its last item) on the assistant message it became."""
    if PROMPT_TOKEN_IDS in item and messages and messages[-1]["role"] == "assistant":
        for key in (*TOKEN_FIELDS, ROUTED_EXPERTS):
            if item.get(key) is not None:
                messages[-1][key] = item[key]


def _message(item: Mapping[str, Any], messages: list[dict[str, Any]], vllm: Any) -> None:
    """A ``message`` item -> a chat message (NeMo Gym's converter for a vllm_model: an assistant
    message joins its turn, other roles keep their content parts)."""
    role = item.get("role")
    if role == "developer" and (vllm is None or vllm.replace_developer_role_with_system):
        role = "system"
    if role not in ("system", "user", "assistant", "developer"):
        raise _unsupported(f"message role {item.get('role')!r}")
    if vllm is not None and role == "assistant":
        add_assistant(messages, _text_of(_content_to_chat(item.get("content"), parts=True)))
        return
    content = _content_to_chat(item.get("content"), parts=vllm is not None)
    messages.append({"role": role, "content": content})


def _function_call(item: Mapping[str, Any], messages: list[dict[str, Any]]) -> None:
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


def _messages(
    params: Mapping[str, Any], token_ids: bool = False, vllm: VllmOptions | None = None
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    instructions = params.get("instructions")
    items = params.get("input")
    if items is None:
        items = []
    if isinstance(items, str):  # NeMo Gym's converter wraps it as one input_text part
        text = items if vllm is None else [{"type": "input_text", "text": items}]
        items = [{"role": "user", "content": text}]
    for item in items:
        kind = item.get("type")
        if kind is None or kind == "message":
            _message(item, messages, vllm)
        elif kind == "function_call":
            _function_call(item, messages)
        elif kind == "function_call_output":
            if not item.get("call_id"):
                raise _unsupported("a function_call_output item without call_id")
            output = item.get("output")
            if not isinstance(output, str):
                output = _content_to_chat(output, parts=vllm is not None)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        elif kind == "reasoning":
            if vllm is not None:  # NeMo Gym's converter sends the summaries back
                fold_reasoning(item, messages)
            continue
        else:
            raise _unsupported(f"input item type {kind!r}")
        if token_ids:
            _carry_tokens(item, messages)
    if instructions and vllm is not None:
        fold_instructions(instructions, messages, _text_of)
    elif instructions:
        messages.insert(0, {"role": "system", "content": instructions})
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
    dropped = _DROPPED_KEYS if vllm is None else _DROPPED_KEYS - _NEMO_GYM_KEPT
    chat: dict[str, Any] = {}
    for key, value in params.items():
        if key not in dropped and value is not None:
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
        if text.get("verbosity") is not None:
            chat["verbosity"] = text["verbosity"]
    if vllm is not None and params.get("top_logprobs") is not None:
        chat["top_logprobs"] = params["top_logprobs"]  # NeMo Gym passes it on as it is
    elif params.get("top_logprobs"):
        chat["logprobs"] = True
        chat["top_logprobs"] = params["top_logprobs"]
    return chat
