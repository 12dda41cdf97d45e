"""What the scripted policy reads from a Chat Completions request, and the turn it answers.

The policy is stateless: ``read_conversation`` gathers what the conversation already holds (the
instructions, the last user text, the tool calls made since and their outputs), and a play
decides from that alone. ``Reply`` is the turn it decides on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = [
    "Call",
    "Conversation",
    "Reply",
    "content_text",
    "decode_json",
    "next_calls",
    "pending_calls",
    "read_conversation",
]

_SORTED_ENCODER = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True)
class Reply:
    """One assistant turn: tool calls ``(name, arguments)`` or a final text; both empty (with
    or without ``reasoning``) only when a test asks for it (``policy.ENDINGS``)."""

    text: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reasoning: str | None = None


@dataclass(frozen=True)
class Call:
    """A tool call the assistant made since the last user message (arguments decoded)."""

    call_id: str
    name: str
    arguments: Any


@dataclass(frozen=True)
class Conversation:
    """What a request holds: instructions, the last user text, calls since and their outputs."""

    system: str
    user: str
    calls: list[Call]
    outputs: dict[str, str]
    parallel: bool
    request_seed: str


def content_text(content: Any) -> str:
    """A message's content as text: a string as is, the text of its parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def decode_json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):  # too deeply nested: not arguments it can use
        return None


def _call_key(arguments: Any) -> bytes:
    """Arguments as comparable bytes; nesting too deep to encode is a key of its own."""
    try:
        return _SORTED_ENCODER.encode(arguments)
    except RecursionError:
        return b"<nested too deeply>"


def read_conversation(request: Mapping[str, Any]) -> Conversation:
    """Gather what a Chat Completions request holds; tolerant of missing or odd fields."""
    messages = request.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    system = "\n".join(
        content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    calls: list[Call] = []
    outputs: dict[str, str] = {}
    for message in messages[last_user + 1 :]:
        role = message.get("role")
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                calls.append(
                    Call(
                        call_id=str(call.get("id")),
                        name=str(function.get("name")),
                        arguments=decode_json(function.get("arguments")),
                    )
                )
        elif role == "tool":
            outputs[str(message.get("tool_call_id"))] = content_text(message.get("content"))
    return Conversation(
        system=system,
        user=content_text(messages[last_user].get("content")) if last_user >= 0 else "",
        calls=calls,
        outputs=outputs,
        parallel=request.get("parallel_tool_calls") is not False,
        request_seed=str(request.get("seed", "")),
    )


def pending_calls(
    planned: list[tuple[str, dict[str, Any]]], made: list[Call]
) -> list[tuple[str, dict[str, Any]]]:
    """The planned calls not made yet (matched by name and arguments)."""
    done = Counter((c.name, _call_key(c.arguments)) for c in made)
    pending = []
    for name, arguments in planned:
        key = (name, _call_key(arguments))
        if done[key]:
            done[key] -= 1
        else:
            pending.append((name, arguments))
    return pending


def next_calls(pending: list[tuple[str, dict[str, Any]]], parallel: bool) -> Reply:
    """The next turn's calls: all pending ones, or only the first without parallel calls."""
    return Reply(calls=pending if parallel else pending[:1])
