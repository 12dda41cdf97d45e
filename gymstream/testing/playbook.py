"""How the scripted policy plays each tool set: the two example environments, and any other.

- ``get_weather``: call it for the city (or cities) named in the user text (``sf`` ->
  ``San Francisco``; ``3 cities`` -> three US cities; default San Francisco), then summarise.
- ``get_synonym_value`` + ``extract_synonym_values``: find the term the user asks about (the
  system prompt's ``The term 'X' has a synonym 'Y'.`` lines), look up each synonym's value (one
  call per turn when ``parallel_tool_calls`` is false), extract the values in listed order, then
  answer with the list. On about a quarter of prompts, chosen by a hash of the user text, the
  request's ``seed`` and the server seed, it makes one deliberate mistake: swapped order, the
  term itself instead of its last synonym (a minefield hit), or a missing value.
- any other tools: call the first tool once with arguments filled from its JSON schema, then
  answer in text.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Mapping
from typing import Any

from gymstream.testing.conversation import (
    Conversation,
    Reply,
    decode_json,
    next_calls,
    pending_calls,
)

__all__ = ["example_arguments", "generic", "mistake_kind", "multi_step", "weather"]

# --- example_single_tool_call -------------------------------------------------------------------

_CITY_ALIASES = {
    "sf": "San Francisco",
    "san francisco": "San Francisco",
    "nyc": "New York",
    "new york": "New York",
    "la": "Los Angeles",
    "los angeles": "Los Angeles",
    "chicago": "Chicago",
    "seattle": "Seattle",
    "boston": "Boston",
    "london": "London",
    "paris": "Paris",
    "tokyo": "Tokyo",
    "berlin": "Berlin",
}
_CITY_RE = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _CITY_ALIASES), key=len, reverse=True)) + r")\b"
)
_COUNT_RE = re.compile(r"\b(\d+|two|three|four|five)\s+cities\b")
_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5}
_US_CITIES = ("New York", "Los Angeles", "Chicago", "Houston", "Phoenix")
_DEFAULT_CITY = "San Francisco"


def _cities(user: str) -> list[str]:
    text = user.lower()
    named = list(dict.fromkeys(_CITY_ALIASES[m] for m in _CITY_RE.findall(text)))
    if named:
        return named
    count = _COUNT_RE.search(text)
    if count:
        word = count.group(1)
        n = int(word) if word.isdigit() else _NUMBERS[word]
        return list(_US_CITIES[: max(1, min(n, len(_US_CITIES)))])
    return [_DEFAULT_CITY]


def weather(conv: Conversation) -> Reply:
    planned = [("get_weather", {"city": city}) for city in _cities(conv.user)]
    pending = pending_calls(planned, conv.calls)
    if pending:
        return next_calls(pending, conv.parallel)
    lines = []
    for call in conv.calls:
        result = decode_json(conv.outputs.get(call.call_id))
        if isinstance(result, dict) and "weather_description" in result:
            lines.append(str(result["weather_description"]))
        else:
            lines.append(conv.outputs.get(call.call_id, "no answer"))
    return Reply(text=" ".join(lines) + " Dress warmly if you go out.")


_SYNONYM_LINE_RE = re.compile(r"The term '([^']*)' has a synonym '([^']*)'\.")
_EXAMPLE_TERM_RE = re.compile(r"the term you should focus on is \"([^\"]+)\"", re.IGNORECASE)
_WORD_RE = re.compile(r"[a-z]+(?:-[a-z]+)*")
# Words that point at a term without naming it ("high temperatures" is about Hot, not High).
_TOPIC_WORDS = {
    "hot": ("heat", "heated", "temperature", "temperatures", "warmth", "warm", "hot", "boiling"),
    "cold": ("cold", "freezing", "chilly", "frozen", "winter", "icy", "frost"),
    "fast": ("speed", "quick", "quickly", "rapid", "fast"),
    "sad": ("sadness", "grief", "sorrow", "sad"),
}


@functools.lru_cache(maxsize=64)
def _synonym_table(system: str) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], str | None]:
    """(term, synonyms in listed order) in order of first mention, and the example's term."""
    table: dict[str, list[str]] = {}
    for term, synonym in _SYNONYM_LINE_RE.findall(system):
        table.setdefault(term, []).append(synonym)
    example = _EXAMPLE_TERM_RE.search(system)
    return (
        tuple((term, tuple(synonyms)) for term, synonyms in table.items()),
        example.group(1) if example else None,
    )


def _pick_term(
    table: tuple[tuple[str, tuple[str, ...]], ...], example: str | None, user: str
) -> tuple[str, tuple[str, ...]] | None:
    words = set(_WORD_RE.findall(user.lower()))
    by_lower = {term.lower(): (term, synonyms) for term, synonyms in table}
    for topic, hints in _TOPIC_WORDS.items():
        if topic in by_lower and words.intersection(hints):
            return by_lower[topic]
    for term, synonyms in table:
        if term.lower() in words:
            return term, synonyms
    for term, synonyms in table:
        if any(s.lower() in words for s in synonyms):
            return term, synonyms
    if example and example.lower() in by_lower:
        return by_lower[example.lower()]
    return table[0] if table else None


def mistake_kind(user: str, request_seed: str, seed: int) -> str | None:
    """The deliberate mistake for this prompt: None (about 75%), "swap", "minefield" or "drop"."""
    bucket = zlib.crc32(f"{seed}|{request_seed}|{user}".encode()) % 100
    if bucket < 75:
        return None
    if bucket < 84:
        return "swap"
    if bucket < 92:
        return "minefield"
    return "drop"


def multi_step(conv: Conversation, seed: int) -> Reply:
    table, example = _synonym_table(conv.system)
    picked = _pick_term(table, example, conv.user)
    if picked is None:
        return Reply(text="I could not find any terms with synonyms in the instructions.")
    term, synonyms = picked
    plan = list(synonyms)
    mistake = mistake_kind(conv.user, conv.request_seed, seed)
    if mistake == "minefield":
        plan[-1] = term
    elif mistake == "drop" and len(plan) > 1:
        plan.pop()
    lookups = [("get_synonym_value", {"synonym": s}) for s in plan]
    pending = pending_calls(lookups, conv.calls)
    if pending:
        return next_calls(pending, conv.parallel)
    values: dict[str, int] = {}
    for call in conv.calls:
        result = decode_json(conv.outputs.get(call.call_id))
        if (
            call.name == "get_synonym_value"
            and isinstance(call.arguments, dict)
            and isinstance(result, dict)
            and isinstance(result.get("synonym_value"), int)
        ):
            values[str(call.arguments.get("synonym"))] = result["synonym_value"]
    answer = [values[s] for s in plan if s in values]
    if mistake == "swap":
        answer.reverse()
    if not any(c.name == "extract_synonym_values" for c in conv.calls):
        return Reply(calls=[("extract_synonym_values", {"synonym_values": answer})])
    return Reply(text="[" + ", ".join(map(str, answer)) + "]")


# --- anything else ------------------------------------------------------------------------------


def example_arguments(schema: Mapping[str, Any], name: str = "") -> Any:
    """A plausible value for a JSON schema: enum/const/default first, then by type.

    Objects get their required properties only; arrays get one item when ``minItems`` asks.
    """
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_arguments(schema[key][0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            key: example_arguments(properties.get(key) or {}, key)
            for key in schema.get("required") or []
        }
    if kind == "array":
        count = int(schema.get("minItems") or 0)
        return [example_arguments(schema.get("items") or {}, name) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"example {name}".strip() if name else "example"


def generic(conv: Conversation, tools: list[dict[str, Any]]) -> Reply:
    first = tools[0]
    name = str(first.get("name"))
    if not any(c.name == name for c in conv.calls):
        return Reply(calls=[(name, example_arguments(first.get("parameters") or {}))])
    results = "; ".join(conv.outputs.get(c.call_id, "no answer") for c in conv.calls)
    return Reply(text=f"I called {name} and got: {results}")
