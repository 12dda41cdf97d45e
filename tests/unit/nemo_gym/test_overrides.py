"""Command-line overrides of responses_create_params: parsing KEY=VALUE, merging key by key."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gymstream.nemo_gym.rows.overrides import apply_overrides, parse_override


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("temperature=0.6", ("temperature", 0.6)),
        ("max_output_tokens=256", ("max_output_tokens", 256)),
        ("parallel_tool_calls=true", ("parallel_tool_calls", True)),
        ("stop=[1,2]", ("stop", [1, 2])),
        ('metadata={"a": "b"}', ("metadata", {"a": "b"})),
        ("tool_choice=auto", ("tool_choice", "auto")),
        ('tool_choice="auto"', ("tool_choice", "auto")),
        ("instructions=a=b", ("instructions", "a=b")),
        ("instructions=", ("instructions", "")),
        ("seed=null", ("seed", None)),
    ],
)
def test_parse_override(text: str, expected: tuple[str, Any]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["temperature", "=0.6"])
def test_parse_override_errors(text: str) -> None:
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_override(text)


def test_apply_overrides_merges_key_by_key_without_mutating() -> None:
    original = {
        "responses_create_params": {
            "input": "what's it like in sf?",
            "temperature": 1.0,
            "max_output_tokens": 64,
        },
        "agent_ref": {
            "type": "responses_api_agents",
            "name": "example_single_tool_call_simple_agent",
        },
    }
    snapshot = msgspec.json.encode(original)
    merged = apply_overrides(original, {"temperature": 0.6, "top_p": 0.9})
    assert merged["responses_create_params"] == {
        "input": "what's it like in sf?",
        "temperature": 0.6,
        "max_output_tokens": 64,
        "top_p": 0.9,
    }
    assert merged["agent_ref"] == original["agent_ref"]
    assert msgspec.json.encode(original) == snapshot
    assert apply_overrides(original, {}) is not original


def test_apply_overrides_needs_params() -> None:
    with pytest.raises(ValueError, match="no responses_create_params"):
        apply_overrides({"x": 1}, {"temperature": 0.5})
