"""The scripted model's deterministic policy: the next assistant turn for a chat conversation.

A test double, not a model: it plays the two example environments well enough to give varied
rewards, and any other tool set plausibly enough to exercise a pipeline (``playbook``). It is
stateless: each call reads the whole conversation (as a Chat Completions request) and decides
from what the conversation already holds, so the same conversation always gets the same answer.

``decide`` picks the turn; ``chat_completion(request, seed, serial)`` wraps it as a Chat
Completions answer (the server converts it for the Responses endpoint). No tools: a short text
answer. A marker of ``ENDINGS`` in the user text: a turn with neither a message nor a tool call.
With ``token_ids`` the answer carries token ids and log-probs in vLLM's shape
(``choice.logprobs.content[i].token`` = ``"token_id:<n>"``; with ``prompt_ids`` also the top-level
``prompt_token_ids`` and ``choice.token_ids``), from ``gymstream.testing.tokens``; usage then
counts those tokens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from gymstream.testing.conversation import Reply, read_conversation
from gymstream.testing.playbook import generic, multi_step, weather
from gymstream.testing.tokens import (
    generation_log_probs,
    generation_token_ids,
    prompt_token_ids,
)

__all__ = ["MODEL_ID", "chat_completion", "decide"]

MODEL_ID = "scripted"
_ENCODER = msgspec.json.Encoder()


ENDINGS: Mapping[str, Reply] = {
    "[scripted:empty]": Reply(),
    "[scripted:reasoning-only]": Reply(reasoning="I should answer, but I only think."),
}
"""A user text with one of these markers gets that turn (no message, no tool call) once the
turn's tools have run (or at once without tools): how a badly trained model ends a turn."""


def decide(request: Mapping[str, Any], seed: int = 0) -> Reply:
    """The next assistant turn for a Chat Completions request (messages + function tools)."""
    conv = read_conversation(request)
    tools = [t.get("function") or {} for t in request.get("tools") or []]
    names = {t.get("name") for t in tools}
    if conv.calls or not tools:
        for marker, reply in ENDINGS.items():
            if marker in conv.user:
                return reply
    if request.get("tool_choice") != "none":
        if {"get_synonym_value", "extract_synonym_values"} <= names:
            return multi_step(conv, seed)
        if "get_weather" in names:
            return weather(conv)
        if tools:
            return generic(conv, tools)
    snippet = " ".join(conv.user.split()[:12])
    return Reply(text=f"This is a scripted answer to: {snippet}")


def _estimate_prompt_tokens(request: Mapping[str, Any]) -> int:
    """About four characters per token over the message texts (a test double's estimate)."""
    chars = 0
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        for call in message.get("tool_calls") or []:
            chars += len((call.get("function") or {}).get("arguments") or "")
    return 1 + chars // 4


def chat_completion(
    request: Mapping[str, Any],
    seed: int,
    serial: int,
    *,
    token_ids: bool = False,
    prompt_ids: bool = False,
) -> dict[str, Any]:
    """The Chat Completions answer to ``request``: ``decide``'s turn with ids and usage.

    ``serial`` makes the ids unique (``scripted<serial hex>``, ``call_<id>_<n>``); token counts
    are estimates (about four characters per token) unless ``token_ids`` (see the module).
    """
    reply = decide(request, seed)
    base_id = f"scripted{serial:012x}"
    tool_calls: list[dict[str, Any]] = []
    output_chars = len(reply.text or "")
    for index, (name, arguments) in enumerate(reply.calls):
        encoded = _ENCODER.encode(arguments).decode()
        output_chars += len(encoded)
        tool_calls.append(
            {
                "id": f"call_{base_id}_{index}",
                "type": "function",
                "function": {"name": name, "arguments": encoded},
            }
        )
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    prompt_tokens = _estimate_prompt_tokens(request)
    completion_tokens = 1 + output_chars // 4
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "finish_reason": "tool_calls" if tool_calls else "stop",
        "logprobs": None,
    }
    answer: dict[str, Any] = {
        "id": base_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or MODEL_ID,
        "choices": [choice],
        "usage": {},
    }
    if token_ids:
        prompt = prompt_token_ids(request.get("messages") or [])
        generation = generation_token_ids(message)
        choice["logprobs"] = {
            "content": [
                {
                    "token": f"token_id:{token}",
                    "logprob": log_prob,
                    "bytes": None,
                    "top_logprobs": [],
                }
                for token, log_prob in zip(
                    generation, generation_log_probs(generation), strict=True
                )
            ]
        }
        if prompt_ids:
            answer["prompt_token_ids"] = prompt
            choice["token_ids"] = generation
        prompt_tokens, completion_tokens = len(prompt), len(generation)
    answer["usage"] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return answer
