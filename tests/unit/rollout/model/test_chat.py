"""Responses <-> Chat Completions conversion: requests out, answers back, nothing lost."""

from __future__ import annotations

from typing import Any

import pytest

from gymstream.errors import ModelResponseError
from gymstream.rollout.loop import sum_usage
from gymstream.rollout.model.chat import responses_to_chat_request
from gymstream.rollout.model.response import chat_to_response, usage_from_chat
from gymstream.settings import VllmOptions

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


def test_string_input_becomes_one_user_message() -> None:
    chat = responses_to_chat_request({"model": "m", "input": "hi", "instructions": "be brief"})
    assert chat == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    }


def test_trajectory_items_become_chat_messages() -> None:
    params = {
        "model": "m",
        "input": [
            {"role": "developer", "content": "sys"},
            {"role": "user", "content": [{"type": "input_text", "text": "weather in sf?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city":"SF"}',
            },
            {
                "type": "function_call",
                "call_id": "c2",
                "name": "get_weather",
                "arguments": '{"city":"LA"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": '{"t": 1}'},
            {"type": "function_call_output", "call_id": "c2", "output": '{"t": 2}'},
            {"type": "function_call", "call_id": "c3", "name": "get_weather", "arguments": "{}"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "max_output_tokens": 64,
        "temperature": 0.6,
        "reasoning": {"effort": "low"},
        "store": True,
        "metadata": {"k": "v"},
        "truncation": None,
        "top_k": 20,
    }
    chat = responses_to_chat_request(params)

    def call(cid: str, arguments: str) -> dict[str, Any]:
        return {
            "id": cid,
            "type": "function",
            "function": {"name": "get_weather", "arguments": arguments},
        }

    assert chat["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "weather in sf?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [call("c1", '{"city":"SF"}'), call("c2", '{"city":"LA"}')],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"t": 1}'},
        {"role": "tool", "tool_call_id": "c2", "content": '{"t": 2}'},
        {"role": "assistant", "content": None, "tool_calls": [call("c3", "{}")]},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "",
                "parameters": WEATHER_TOOL["parameters"],
                "strict": True,
            },
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["max_tokens"] == 64
    assert chat["temperature"] == 0.6
    assert chat["reasoning_effort"] == "low"
    assert chat["top_k"] == 20
    for dropped in ("store", "metadata", "truncation", "input", "max_output_tokens", "reasoning"):
        assert dropped not in chat


def test_parallel_tool_calls_dropped_without_tools() -> None:
    chat = responses_to_chat_request({"input": "x", "parallel_tool_calls": True, "tools": []})
    assert "parallel_tool_calls" not in chat
    assert "tools" not in chat


def test_json_schema_text_format_becomes_response_format() -> None:
    chat = responses_to_chat_request(
        {
            "input": "x",
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
        }
    )
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "s", "schema": {"type": "object"}},
    }


def test_image_parts_keep_list_form() -> None:
    chat = responses_to_chat_request(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is it?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
                    ],
                }
            ]
        }
    )
    assert chat["messages"][0]["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"input": "x", "stream": True},
        {"input": "x", "previous_response_id": "resp_1"},
        {"input": "x", "tools": [{"type": "web_search"}]},
        {"input": [{"type": "item_reference", "id": "x"}]},
        {"input": [{"role": "tool", "content": "x"}]},
    ],
)
def test_unsupported_requests_raise_typed_error(params: dict[str, Any]) -> None:
    with pytest.raises(ModelResponseError) as info:
        responses_to_chat_request(params)
    assert info.value.failure_class == "model_request_unsupported"
    assert not info.value.retriable


def chat_answer(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "served-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }


def test_chat_answer_with_tool_calls_becomes_response_items() -> None:
    request = {"model": "m", "input": "x", "tools": [WEATHER_TOOL], "temperature": 0.5}
    response = chat_to_response(
        chat_answer(
            {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "think",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"SF"}'},
                    }
                ],
            },
            finish="tool_calls",
        ),
        request,
    )
    assert response["object"] == "response"
    assert response["status"] == "completed"
    assert response["model"] == "served-model"
    assert response["tools"] == [{**WEATHER_TOOL, "defer_loading": None}]  # as NeMo Gym echoes
    assert response["temperature"] == 0.5
    assert [item["type"] for item in response["output"]] == [
        "reasoning",
        "message",
        "function_call",
    ]
    message = response["output"][1]
    assert message["role"] == "assistant"
    assert message["content"][0]["type"] == "output_text"
    assert message["content"][0]["text"] == "Checking."
    call = response["output"][2]
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_a",
        "get_weather",
        '{"city":"SF"}',
    )
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": None},  # not reported: unknown, not 0
        "total_tokens": 15,
    }


def test_length_finish_is_incomplete() -> None:
    response = chat_to_response(chat_answer({"role": "assistant", "content": "abc"}, "length"), {})
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_answer_without_message_is_malformed() -> None:
    with pytest.raises(ModelResponseError) as info:
        chat_to_response({"choices": []}, {})
    assert info.value.failure_class == "model_malformed_response"


def test_round_trip_keeps_the_conversation() -> None:
    """A converted answer, fed back as input, converts to the same assistant message."""
    answer = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_z",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"SF"}'},
            }
        ],
    }
    response = chat_to_response(chat_answer(answer, "tool_calls"), {"input": "x"})
    chat = responses_to_chat_request({"input": response["output"]})
    assert chat["messages"] == [answer]


def test_usage_absent_stays_none() -> None:
    assert usage_from_chat(None) is None
    assert usage_from_chat({"prompt_tokens": 3, "completion_tokens": 2}) == {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": None},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": None},
        "total_tokens": 5,
    }


def test_a_vllm_model_keeps_content_parts_and_folds_instructions() -> None:
    """NeMo Gym's converter (a vllm_model): parts stay parts, instructions and the leading
    developer message make one system message, metadata and store pass on."""
    parts = [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]
    params = {
        "instructions": "rules",
        "input": [
            {"role": "developer", "content": parts},
            {"role": "user", "content": parts},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": parts},
        ],
        "metadata": {"k": "v"},
        "store": False,
        "top_logprobs": 0,
    }
    chat = responses_to_chat_request(params, vllm=VllmOptions())
    text_parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert chat["messages"][0] == {"role": "system", "content": "rules\n\nab"}
    assert chat["messages"][1] == {"role": "user", "content": text_parts}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "c", "content": text_parts}
    assert (chat["metadata"], chat["store"], chat["top_logprobs"]) == ({"k": "v"}, False, 0)
    assert "logprobs" not in chat
    string = responses_to_chat_request({"input": "hi"}, vllm=VllmOptions())
    assert string["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    plain = responses_to_chat_request(params)  # any other chat server: one string
    assert plain["messages"][:2] == [
        {"role": "system", "content": "rules"},
        {"role": "system", "content": "ab"},
    ]


def test_an_unreported_count_stays_unknown_in_the_sum() -> None:
    known = usage_from_chat({"prompt_tokens": 3, "completion_tokens": 2,
                             "prompt_tokens_details": {"cached_tokens": 1}})  # fmt: skip
    unknown = usage_from_chat({"prompt_tokens": 3, "completion_tokens": 2})
    assert known is not None
    assert unknown is not None
    total = sum_usage([known, unknown])
    assert total is not None
    assert total["input_tokens"] == 6
    assert total["input_tokens_details"] == {"cached_tokens": None}
