"""The scripted model's token ids: a toy chat template and tokenizer, deterministic, no vocabulary.

A chat is rendered the way a real template renders it, as token ids: per message a role token,
the message body, an end token; the prompt ends with the assistant's role token (the generation
prompt). The body is the text split into words, single spaces and punctuation, each piece
hashed to an id (no vocabulary file); an assistant body adds each tool call as
``CALL name arguments CALL_END``. A turn's generation is the body of the assistant message it
returns plus the end token, so the next turn's prompt (the same history, the assistant message
sent back as it came, then tool outputs) extends prompt + generation exactly, as with a real
template that renders history unchanged. Log-probs are a deterministic function of the token id
and its position, in (-4, 0].
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from gymstream.testing.conversation import content_text

__all__ = ["generation_log_probs", "generation_token_ids", "prompt_token_ids"]

_ROLES = {"system": 1, "developer": 1, "user": 2, "assistant": 3, "tool": 4}
_END, _CALL, _CALL_END, _OTHER_ROLE = 5, 6, 7, 8
_FIRST_TEXT_ID = 100
_VOCAB = 32_000
_PIECE = re.compile(r"\w+|\s|[^\w\s]")


def _text_ids(text: str) -> list[int]:
    return [_FIRST_TEXT_ID + zlib.crc32(p.encode()) % _VOCAB for p in _PIECE.findall(text)]


def _body(message: Mapping[str, Any]) -> list[int]:
    ids = _text_ids(content_text(message.get("content")))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        ids.append(_CALL)
        ids += _text_ids(str(function.get("name") or ""))
        ids += _text_ids(str(function.get("arguments") or ""))
        ids.append(_CALL_END)
    return ids


def prompt_token_ids(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The prompt ids of a chat: every message rendered, then the assistant's role token."""
    ids: list[int] = []
    for message in messages:
        ids.append(_ROLES.get(str(message.get("role")), _OTHER_ROLE))
        ids += _body(message)
        ids.append(_END)
    ids.append(_ROLES["assistant"])
    return ids


def generation_token_ids(message: Mapping[str, Any]) -> list[int]:
    """The ids the assistant ``message`` was generated as: its body, then the end token."""
    return [*_body(message), _END]


def generation_log_probs(ids: list[int]) -> list[float]:
    """One log-prob per generated id, deterministic, in (-4, 0]."""
    return [-((token * 7919 + index * 104_729) % 4000) / 1000.0 for index, token in enumerate(ids)]
