"""The scripted policy on its own: schema-filled arguments, parallel calls, seeded mistakes."""

from __future__ import annotations

from gymstream.testing.playbook import example_arguments, mistake_kind
from gymstream.testing.policy import decide

# the policy goes by the tool's name; the schema is the example environment's own
CHAT_WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


def test_policy_fills_unknown_tool_arguments_from_schema() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {
                    "room": {"type": "string", "enum": ["red", "blue"]},
                    "nights": {"type": "integer", "minimum": 2},
                    "guests": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "vip": {"type": "boolean"},
                    "note": {"type": "string"},
                },
                "required": ["room", "nights", "guests", "vip"],
            },
        },
    }
    first = decide({"messages": [{"role": "user", "content": "book it"}], "tools": [tool]})
    assert first.text is None
    assert first.calls == [
        ("book", {"room": "red", "nights": 2, "guests": ["example guests"], "vip": True})
    ]
    second = decide(
        {
            "messages": [
                {"role": "user", "content": "book it"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c1", "function": {"name": "book", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "booked"},
            ],
            "tools": [tool],
        }
    )
    assert second.calls == []
    assert second.text is not None
    assert "booked" in second.text


def test_policy_without_tools_answers_text() -> None:
    reply = decide({"messages": [{"role": "user", "content": "What is 2 + 2?"}]})
    assert reply.calls == []
    assert reply.text is not None
    assert "2 + 2" in reply.text


def test_policy_respects_parallel_tool_calls_false() -> None:
    request = {
        "messages": [{"role": "user", "content": "weather in sf and nyc"}],
        "tools": [CHAT_WEATHER_TOOL],
    }
    assert len(decide(request).calls) == 2
    assert len(decide({**request, "parallel_tool_calls": False}).calls) == 1


def test_mistakes_are_a_minority_and_all_kinds_occur() -> None:
    kinds = [mistake_kind(f"prompt {i}", "", 0) for i in range(1000)]
    correct = kinds.count(None)
    assert 650 <= correct <= 850
    assert {"swap", "minefield", "drop"} <= set(kinds)
    assert kinds == [mistake_kind(f"prompt {i}", "", 0) for i in range(1000)]
    assert kinds != [mistake_kind(f"prompt {i}", "", 1) for i in range(1000)]


def test_example_arguments_by_type() -> None:
    assert example_arguments({"type": "number"}) == 1.0
    assert example_arguments({"type": ["null", "integer"]}) == 1
    assert example_arguments({"anyOf": [{"type": "boolean"}, {"type": "string"}]}) is True
    assert example_arguments({"type": "string"}, "city") == "example city"
    assert example_arguments({"type": "object", "properties": {"a": {}}}) == {}
