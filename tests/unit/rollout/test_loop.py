"""The agent loop against a fake ModelClient: tool calls, errors the model sees, caps, usage."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from gymstream.errors import ModelCallError, ToolError, VerifierError
from gymstream.rollout.environment import SimpleEnvironment, Tool
from gymstream.rollout.loop import DEFAULT_MAX_STEPS, run_rollout, sum_usage
from gymstream.wire.messages import FailureClass


def call(name: str, arguments: str, call_id: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def response(*items: dict[str, Any], status: str = "completed", tokens: int = 10) -> dict[str, Any]:
    return {
        "id": "resp_x",
        "object": "response",
        "status": status,
        "model": "served",
        "output": list(items),
        "usage": {
            "input_tokens": tokens,
            "input_tokens_details": {"cached_tokens": 1},
            "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens + 2,
        },
    }


@dataclass
class FakeModel:
    """Answers from a script (the last answer repeats); records every request."""

    answers: list[dict[str, Any] | Exception]
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(json.loads(json.dumps(params)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Recorded:
    sessions: list[Any] = field(default_factory=list)
    verified: list[dict[str, Any]] = field(default_factory=list)


def make_env(
    recorded: Recorded | None = None,
    *,
    tools: Mapping[str, Tool] | None = None,
    verify_result: dict[str, Any] | Exception | None = None,
) -> SimpleEnvironment:
    recorded = recorded if recorded is not None else Recorded()

    def get_weather(session: Any, arguments: dict[str, Any]) -> dict[str, Any]:
        recorded.sessions.append(session)
        city = arguments["city"]
        return {"city": city, "weather_description": f"The weather in {city} is cold."}

    async def verify(row: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
        recorded.verified.append(final)
        if isinstance(verify_result, Exception):
            raise verify_result
        return verify_result if verify_result is not None else {"reward": 1.0, "hits": 3}

    return SimpleEnvironment(
        name="fake",
        tools=tools if tools is not None else {"get_weather": get_weather},
        verify_fn=verify,
        session_factory=lambda row: {"seeded_with": row.get("id")},
    )


ROW: dict[str, Any] = {
    "id": 7,
    "agent_ref": {"name": "fake_agent"},
    "expected_answer": "cold",
    "responses_create_params": {
        "input": [{"role": "user", "content": "weather in sf?"}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
        "temperature": 1.0,
    },
}


async def test_tool_call_then_answer_builds_whole_trajectory() -> None:
    recorded = Recorded()
    model = FakeModel(
        [
            response(call("get_weather", '{"city":"SF"}', "c1"), tokens=10),
            response(message("It is cold."), tokens=30),
        ]
    )
    result = await run_rollout(
        ROW, make_env(recorded), model, model_name="policy", overrides={"temperature": 0.6}
    )

    output = result.verify_result["response"]["output"]
    assert [i["type"] for i in output] == ["function_call", "function_call_output", "message"]
    assert output[1] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": '{"city":"SF","weather_description":"The weather in SF is cold."}',
    }
    assert result.turns == 2
    assert result.tool_calls == 1
    assert result.tool_errors == 0
    # the second request carries the input plus every item so far
    assert model.requests[1]["input"] == ROW["responses_create_params"]["input"] + output[:2]
    assert all(r["model"] == "policy" and r["temperature"] == 0.6 for r in model.requests)
    # usage summed over turns, nested details too
    assert result.verify_result["response"]["usage"] == {
        "input_tokens": 40,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 44,
    }
    # the session was seeded with the row and handed to the tool
    assert recorded.sessions == [{"seeded_with": 7}]
    assert recorded.verified[0]["output"] == output


async def test_verify_result_has_nemo_gym_fields() -> None:
    model = FakeModel([response(message("hi"))])
    result = await run_rollout(ROW, make_env(), model, model_name="policy")
    vr = result.verify_result
    assert vr["responses_create_params"] == {**ROW["responses_create_params"], "model": "policy"}
    assert vr["reward"] == 1.0
    assert isinstance(vr["reward"], float)
    assert vr["mask_sample"] is False
    assert vr["failure_kind"] is None
    assert vr["failure_reason"] is None
    assert vr["hits"] == 3
    assert vr["id"] == 7
    assert vr["expected_answer"] == "cold"
    assert "agent_ref" not in vr
    assert set(result.timings) == {"model_s", "tools_s", "verify_s"}
    assert all(v >= 0 for v in result.timings.values())


async def test_string_input_is_sent_as_user_message() -> None:
    model = FakeModel([response(message("hi"))])
    row = {"responses_create_params": {"input": "hello"}}
    result = await run_rollout(row, make_env(), model, model_name="m")
    assert model.requests[0]["input"] == [{"role": "user", "content": "hello"}]
    assert result.verify_result["responses_create_params"]["input"] == "hello"


async def test_bad_json_arguments_become_error_output_and_loop_goes_on() -> None:
    model = FakeModel(
        [response(call("get_weather", "{city: SF", "c1")), response(message("sorry"))]
    )
    result = await run_rollout(ROW, make_env(), model, model_name="m")
    output = result.verify_result["response"]["output"]
    assert output[1]["type"] == "function_call_output"
    assert output[1]["call_id"] == "c1"
    assert output[1]["output"].startswith(
        '{"error": "Invalid tool call arguments: JSONDecodeError('
    )  # simple_agent's text, json.dumps defaults
    assert output[2]["type"] == "message"
    assert result.turns == 2
    assert result.tool_errors == 1


async def test_unknown_tool_becomes_error_output() -> None:
    model = FakeModel([response(call("get_time", "{}", "c1")), response(message("ok"))])
    result = await run_rollout(ROW, make_env(), model, model_name="m")
    text = result.verify_result["response"]["output"][1]["output"]
    assert text == '{"detail":"Not Found"}'  # a resources server's 404 body
    assert result.turns == 2


async def test_tool_exception_is_shown_to_model_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = FakeModel(
        [response(call("get_weather", '{"town":"SF"}', "c1")), response(message("x"))]
    )
    with caplog.at_level(logging.WARNING, logger="gymstream.rollout.loop"):
        result = await run_rollout(ROW, make_env(), model, model_name="m")
    text = result.verify_result["response"]["output"][1]["output"]
    assert text.startswith("Error: tool 'get_weather' failed: KeyError")
    assert "get_weather" in caplog.text
    assert "KeyError" in caplog.text
    assert result.tool_errors == 1


async def test_every_call_of_a_turn_runs_in_order() -> None:
    model = FakeModel(
        [
            response(
                call("get_weather", '{"city":"A"}', "c1"), call("get_weather", '{"city":"B"}', "c2")
            ),
            response(message("done")),
        ]
    )
    result = await run_rollout(ROW, make_env(), model, model_name="m")
    output = result.verify_result["response"]["output"]
    assert [(i["type"], i["call_id"]) for i in output[:4]] == [
        ("function_call", "c1"),
        ("function_call", "c2"),
        ("function_call_output", "c1"),
        ("function_call_output", "c2"),
    ]
    assert json.loads(output[3]["output"])["city"] == "B"


async def test_async_tools_are_awaited() -> None:
    async def lookup(session: Any, arguments: dict[str, Any]) -> dict[str, Any]:
        return {"session": session, "echo": arguments}

    model = FakeModel([response(call("lookup", '{"q": 1}', "c1")), response(message("ok"))])
    env = make_env(tools={"lookup": lookup})
    result = await run_rollout(ROW, env, model, model_name="m")
    assert result.verify_result["response"]["output"][1]["output"] == (
        '{"session":{"seeded_with":7},"echo":{"q":1}}'
    )


async def test_max_steps_caps_model_calls_and_keeps_call_outputs() -> None:
    model = FakeModel([response(call("get_weather", '{"city":"SF"}', "c"))])
    result = await run_rollout(ROW, make_env(), model, model_name="m", max_steps=3)
    assert result.turns == 3
    assert len(model.requests) == 3
    types = [i["type"] for i in result.verify_result["response"]["output"]]
    assert types == ["function_call", "function_call_output"] * 3


async def test_default_max_steps_is_a_cap() -> None:
    model = FakeModel([response(call("get_weather", '{"city":"SF"}', "c"))])
    result = await run_rollout(ROW, make_env(), model, model_name="m")
    assert result.turns == DEFAULT_MAX_STEPS == 16


async def test_incomplete_response_stops_without_running_tools() -> None:
    recorded = Recorded()
    model = FakeModel([response(call("get_weather", '{"city":"SF"}', "c1"), status="incomplete")])
    result = await run_rollout(ROW, make_env(recorded), model, model_name="m")
    assert result.turns == 1
    assert recorded.sessions == []
    assert [i["type"] for i in result.verify_result["response"]["output"]] == ["function_call"]


async def test_verifier_exception_becomes_verifier_error() -> None:
    boom = RuntimeError("verifier bug")
    model = FakeModel([response(message("hi"))])
    with pytest.raises(VerifierError) as info:
        await run_rollout(ROW, make_env(verify_result=boom), model, model_name="m")
    assert info.value.__cause__ is boom
    assert "fake" in str(info.value)
    assert not info.value.retriable


async def test_verifier_without_reward_is_an_error() -> None:
    model = FakeModel([response(message("hi"))])
    with pytest.raises(VerifierError, match="reward"):
        await run_rollout(ROW, make_env(verify_result={"score": 1}), model, model_name="m")


async def test_model_errors_propagate() -> None:
    error = ModelCallError(
        "down", failure_class=FailureClass.MODEL_HTTP_5XX, http_status=503, attempts=4
    )
    model = FakeModel([error])
    with pytest.raises(ModelCallError) as info:
        await run_rollout(ROW, make_env(), model, model_name="m")
    assert info.value is error


async def test_unserialisable_tool_result_is_tool_error() -> None:
    def bad(session: Any, arguments: dict[str, Any]) -> Any:
        return {1, 2}

    model = FakeModel([response(call("bad", "{}", "c1")), response(message("x"))])
    with pytest.raises(ToolError, match="bad"):
        await run_rollout(ROW, make_env(tools={"bad": bad}), model, model_name="m")


def test_sum_usage_adds_nested_fields_and_handles_none() -> None:
    assert sum_usage([]) is None
    assert sum_usage(
        [{"input_tokens": 1, "details": {"a": 1}}, {"input_tokens": 2, "details": {"a": 2}}]
    ) == {"input_tokens": 3, "details": {"a": 3}}


async def test_deeply_nested_arguments_become_error_output_and_loop_goes_on() -> None:
    deep = '{"city": ' + "[" * 100_000 + "]" * 100_000 + "}"
    model = FakeModel([response(call("get_weather", deep, "c1")), response(message("sorry"))])
    result = await run_rollout(ROW, make_env(), model, model_name="m")
    output = result.verify_result["response"]["output"]
    assert (output[1]["type"], output[1]["call_id"]) == ("function_call_output", "c1")
    assert output[1]["output"] == (
        "Error: the arguments for tool 'get_weather' are nested too deeply to read"
    )
    assert output[2]["content"][0]["text"] == "sorry"
