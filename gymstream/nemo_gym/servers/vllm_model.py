"""NeMo Gym 0.7.0's ``vllm_model`` rules for the Chat Completions body, and for its answer.

``prepare_chat(chat, params, options)`` does what vllm_model's
``_preprocess_chat_completion_create_params`` does to the body it sends to vLLM, in its order:

1. each function tool's ``strict`` is removed (vLLM does not implement it, and chat templates
   that render unknown keys would put it into the prompt); with ``uses_reasoning_parser`` the
   ``<think>`` tags of earlier turns (``fold_reasoning``) leave the assistant content for its
   ``reasoning_content`` / ``reasoning``;
2. ``chat_template_kwargs``: the config's, then the request's own top-level ones only with
   ``forward_request_chat_template_kwargs`` (else they are dropped), then
   ``metadata.chat_template_kwargs`` (a JSON string, per row) over both;
3. ``extra_body``: the config's, updated with ``metadata.extra_body`` (a JSON string, per row:
   NeMo Gym's collector puts its per-rollout ``seed`` there), merged *under* the body (the
   body's own keys, token-id requests included, win);
4. a null ``top_logprobs`` is left out;
5. ``sampling_overrides`` last: they replace whatever the request says.

``reasoning_texts(message, options)``: with ``uses_reasoning_parser``, what vllm_model makes of
an answer: the server's ``reasoning_content`` (or ``reasoning``) and every
``<think>...</think>`` in the content become the reasoning texts, the content loses the tags.

Metadata that is not a JSON object string is a ``ModelResponseError`` (failure class
``model_request_unsupported``: the row is wrong, a retry cannot help); NeMo Gym answers 500.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from gymstream.errors import ModelResponseError
from gymstream.nemo_gym.rows.overrides import metadata_object
from gymstream.settings import VllmOptions
from gymstream.wire.messages import FailureClass

__all__ = [
    "add_assistant",
    "fold_instructions",
    "fold_reasoning",
    "prepare_chat",
    "reasoning_texts",
]

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def _metadata_object(metadata: Mapping[str, Any], key: str) -> dict[str, Any]:
    try:
        return metadata_object(metadata, key)
    except ValueError as exc:
        raise ModelResponseError(
            f"responses_create_params.metadata.{key} {exc} (NeMo Gym's vllm_model reads it so)",
            failure_class=FailureClass.MODEL_REQUEST_UNSUPPORTED,
        ) from None


def prepare_chat(
    chat: dict[str, Any], params: Mapping[str, Any], options: VllmOptions
) -> dict[str, Any]:
    """The body vllm_model would send for ``chat`` (built from the Responses ``params``)."""
    for tool in chat.get("tools") or []:
        if tool.get("type") == "function":
            (tool.get("function") or {}).pop("strict", None)
    if options.uses_reasoning_parser:
        _parse_history(chat.get("messages") or [])
    metadata = params.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}

    template_kwargs = copy.deepcopy(options.chat_template_kwargs or {})
    own = chat.pop("chat_template_kwargs", None)
    if own and options.forward_request_chat_template_kwargs:
        template_kwargs.update(own)
    template_kwargs.update(_metadata_object(metadata, "chat_template_kwargs"))
    if template_kwargs:
        chat["chat_template_kwargs"] = template_kwargs

    extra_body = copy.deepcopy(options.extra_body or {})
    extra_body.update(_metadata_object(metadata, "extra_body"))
    if chat.get("top_logprobs", 0) is None:
        del chat["top_logprobs"]
    if extra_body:
        chat = extra_body | chat
    if options.sampling_overrides:
        chat.update(options.sampling_overrides)
    return chat


def reasoning_texts(message: dict[str, Any]) -> tuple[list[str], Any]:
    """(reasoning texts, content without ``<think>`` tags) of a chat answer's message, as
    vllm_model with ``uses_reasoning_parser`` reads it."""
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    field = message.get("reasoning_content") or message.get("reasoning")
    if field:
        text = f"<think>{field}</think>{text}"
    if not text:
        return [], content
    return list(_THINK.findall(text)), _THINK.sub("", text)


def _open_assistant(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    last = messages[-1] if messages else None
    if (
        last is None
        or last["role"] != "assistant"
        or not isinstance(last.get("content"), str | None)
    ):
        return None
    return last


def fold_reasoning(item: Mapping[str, Any], messages: list[dict[str, Any]]) -> None:
    """A ``reasoning`` item of an earlier turn, as NeMo Gym's converter sends it back: its
    summary texts as ``<think>...</think>`` in the turn's assistant message (one is opened when
    the turn has none yet); ``prepare_chat`` moves them to ``reasoning_content`` when the
    server parses reasoning."""
    texts = [s.get("text") for s in item.get("summary") or [] if isinstance(s, Mapping)]
    think = "".join(f"<think>{t}</think>" for t in texts if t) or None
    add_assistant(messages, think)


def add_assistant(messages: list[dict[str, Any]], content: Any) -> None:
    """An assistant turn's content, as NeMo Gym's converter buffers a turn: appended to the
    assistant message just before it (reasoning, text and tool calls make one message)."""
    last = _open_assistant(messages)
    if last is None or not isinstance(content, str | None):
        messages.append({"role": "assistant", "content": content or None})
        return
    last["content"] = ((last.get("content") or "") + (content or "")) or None


def fold_instructions(
    instructions: str, messages: list[dict[str, Any]], text_of: Callable[[Any], str]
) -> None:
    """NeMo Gym's converter: ``instructions`` and the run of system/developer messages that
    opens the conversation become ONE leading system message, their texts joined by a blank
    line (chat backends often take a single system message, at position 0)."""
    texts = [instructions]
    while messages and messages[0]["role"] in ("system", "developer"):
        texts.append(text_of(messages.pop(0)["content"]))
    messages.insert(0, {"role": "system", "content": "\n\n".join(texts)})


def _parse_history(messages: list[dict[str, Any]]) -> None:
    """vllm_model with ``uses_reasoning_parser``: ``<think>`` tags leave the assistant content;
    the first one's text is the message's ``reasoning_content`` and ``reasoning`` (both, as
    0.7.0's default ``reasoning_field: both``)."""
    for message in messages:
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, str):
            continue
        found = _THINK.findall(content)
        message["content"] = _THINK.sub("", content)
        if found:
            message["reasoning_content"] = message["reasoning"] = found[0]
