"""The ported examples against NeMo Gym 0.7.0's real servers: same rows, same answers.

Three comparisons, each against the running NeMo Gym servers (``nemo_gym_examples``):
- whole rollouts: NeMo Gym's ``simple_agent`` ``/run`` over its resources server and gymstream's
  agent loop over the native environment, both with gymstream's scripted model, row by row:
  reward, every verifier field, trajectory item types, tool names, arguments and output texts;
- tool answers: the same function calls (good, bad and odd arguments) through NeMo Gym's agent
  rule (``json.loads`` then POST ``/<tool>``, the raw body) and through gymstream's loop;
- verifiers: the same responses through ``POST /verify`` and the native verifier. Where NeMo
  Gym's verifier crashes (500), gymstream scores the case; those cases are listed here and in
  docs/nemo_gym_compat.md, and anything else must match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fixtures.nemo_gym_rows import (
    NOT_VERIFIER_FIELDS,
    example_rows,
    function_call,
    rows_of,
    trajectory,
)
from fixtures.nemo_gym_servers import (
    MS_AGENT,
    MS_RESOURCES,
    STC_AGENT,
    STC_RESOURCES,
    NemoGymServers,
)

from gymstream.rollout.environment import load_environment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import build_model_client
from gymstream.settings import ModelSettings, RetrySettings
from gymstream.testing.thread import ScriptedThread

AGENTS = {"example_single_tool_call": STC_AGENT, "example_multi_step": MS_AGENT}
RESOURCES = {"example_single_tool_call": STC_RESOURCES, "example_multi_step": MS_RESOURCES}


async def _ours(row: dict[str, Any], environment: str, scripted: ScriptedThread) -> dict[str, Any]:
    model = build_model_client(
        ModelSettings(base_url=scripted.url, name="scripted"), RetrySettings()
    )
    try:
        result = await run_rollout(row, load_environment(environment), model, model_name="scripted")
    finally:
        await model.aclose()
    return result.verify_result


@pytest.mark.parametrize("environment", sorted(AGENTS))
async def test_rollouts_equal_nemo_gyms_simple_agent_row_by_row(
    environment: str, nemo_gym_examples: NemoGymServers, scripted_model: ScriptedThread
) -> None:
    rewards = set()
    async with httpx.AsyncClient(timeout=60) as client:
        for index, row in enumerate(rows_of(environment)):
            theirs_http = await client.post(
                f"{nemo_gym_examples.url(AGENTS[environment])}/run", json=row
            )
            assert theirs_http.status_code == 200, theirs_http.text
            theirs = theirs_http.json()
            ours = await _ours(row, environment, scripted_model)
            where = f"{environment} row {index}"
            verifier_fields = set(theirs) - NOT_VERIFIER_FIELDS
            missing = verifier_fields - set(ours)
            assert not missing, f"{where}: gymstream lacks {missing}"
            assert {k: ours[k] for k in verifier_fields} == {
                k: theirs[k] for k in verifier_fields
            }, where
            assert trajectory(ours["response"]) == trajectory(theirs["response"]), where
            rewards.add(theirs["reward"])
    assert rewards == {0.0, 1.0}, "the rows must exercise both rewards"


@dataclass(frozen=True)
class Call:
    tool: str
    arguments: str  # the raw text the model sent


TOOL_CALLS = {
    "example_single_tool_call": [
        Call("get_weather", '{"city": "sf"}'),
        Call("get_weather", '{"city": "Zürich"}'),  # UTF-8 kept
        Call("get_weather", '{"city": "sf", "unit": "C"}'),  # extra keys ignored
        Call("get_weather", '{"town": "sf"}'),  # 422 missing
        Call("get_weather", '{"city": 3}'),  # 422 string_type
        Call("get_weather", '["sf"]'),  # 422 not an object
        Call("get_weather", "null"),  # no body at all
        Call("get_time", '{"city": "sf"}'),  # 404
    ],
    "example_multi_step": [
        Call("get_synonym_value", '{"synonym": "Blazing"}'),
        Call("get_synonym_value", '{"synonym": "Über"}'),
        Call("get_synonym_value", "{}"),
        Call("extract_synonym_values", '{"synonym_values": [711, 407]}'),
        Call("extract_synonym_values", '{"synonym_values": ["711", 1.0, true]}'),  # lax coercion
        Call("extract_synonym_values", '{"synonym_values": [1.5]}'),
        Call("extract_synonym_values", '{"synonym_values": "711"}'),
    ],
}


async def _nemo_gym_tool_text(client: httpx.AsyncClient, base_url: str, call: Call) -> str:
    """simple_agent's rule: ``json.loads`` the arguments, POST them, the raw body whatever the
    status (``json=None`` sends no body, as aiohttp does)."""
    arguments = json.loads(call.arguments)
    if arguments is None:
        answer = await client.post(f"{base_url}/{call.tool}")
    else:
        answer = await client.post(f"{base_url}/{call.tool}", json=arguments)
    return answer.content.decode()


class _OneCallModel:
    """Makes one function call, then answers in text."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.turn = 0

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        self.turn += 1
        output: list[dict[str, Any]]
        if self.turn == 1:
            item = {"type": "function_call", "call_id": "c1", "name": self.call.tool}
            output = [{**item, "arguments": self.call.arguments, "status": "completed"}]
        else:
            text = [{"type": "output_text", "text": "done", "annotations": []}]
            output = [{"type": "message", "role": "assistant", "content": text}]
        return {"id": "r", "object": "response", "status": "completed", "output": output}


@pytest.mark.parametrize("environment", sorted(TOOL_CALLS))
async def test_tool_output_texts_equal_nemo_gyms(
    environment: str, nemo_gym_examples: NemoGymServers
) -> None:
    row = example_rows(environment)[0]
    base_url = nemo_gym_examples.url(RESOURCES[environment])
    async with httpx.AsyncClient(timeout=30) as client:
        for call in TOOL_CALLS[environment]:
            theirs = await _nemo_gym_tool_text(client, base_url, call)
            result = await run_rollout(
                row, load_environment(environment), _OneCallModel(call), model_name="m"
            )
            ours = result.verify_result["response"]["output"][1]["output"]
            assert ours == theirs, call


async def test_invalid_json_arguments_get_simple_agents_text() -> None:
    """Not sent to any server: simple_agent writes this text itself (its app.py)."""
    try:
        json.loads("{not json")
    except json.JSONDecodeError as exc:
        expected = json.dumps({"error": f"Invalid tool call arguments: {exc!r}"})
    row = example_rows("example_single_tool_call")[0]
    result = await run_rollout(
        row,
        load_environment("example_single_tool_call"),
        _OneCallModel(Call("get_weather", "{not json")),
        model_name="m",
    )
    assert result.verify_result["response"]["output"][1]["output"] == expected


def _extract(arguments: str) -> dict[str, Any]:
    return function_call("extract_synonym_values", arguments)


def _weather_call() -> dict[str, Any]:
    return function_call("get_weather", '{"city": "sf"}')


def _text() -> dict[str, Any]:
    content = [{"type": "output_text", "text": "hi", "annotations": []}]
    return {
        "type": "message",
        "id": "m",
        "role": "assistant",
        "status": "completed",
        "content": content,
    }


# (environment, output items, expected_synonym_values or None for the row's, and where NeMo Gym
# crashes (500) the reward gymstream gives instead, else None)
VERIFY_CASES = [
    ("example_single_tool_call", [_text()], None, None),
    ("example_single_tool_call", [_weather_call(), _text()], None, None),
    ("example_single_tool_call", [{**_weather_call(), "name": "get_time"}], None, None),
    ("example_multi_step", [_text()], None, None),
    ("example_multi_step", [_extract('{"synonym_values": [1]}'), _text()], None, None),
    ("example_multi_step", [_extract('{"synonym_values": ["1", 2.0]}')], [1, 2], None),
    ("example_multi_step", [_extract('{"synonym_values": [2, 1]}')], [1, 2], None),
    ("example_multi_step", [_extract('{"synonym_values": [1]}'), _extract("{}")], [1], 0.0),
    ("example_multi_step", [_extract("{not json")], [1], 0.0),
    ("example_multi_step", [_extract('{"synonym_values": [[1]]}')], [1], 0.0),
    ("example_multi_step", [_extract('{"synonym_values": [1.5]}')], [1], 0.0),
    ("example_multi_step", [_extract('{"synonym_values": []}')], [], 1.0),
]


@pytest.mark.parametrize(("environment", "output", "expected", "reward_on_crash"), VERIFY_CASES)
async def test_verifiers_equal_nemo_gyms(
    environment: str,
    output: list[dict[str, Any]],
    expected: list[int] | None,
    reward_on_crash: float | None,
    nemo_gym_examples: NemoGymServers,
) -> None:
    row = dict(example_rows(environment)[0])
    if expected is not None:
        row["expected_synonym_values"] = expected
    response = {
        "id": "resp",
        "created_at": 0.0,
        "model": "scripted",
        "object": "response",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{nemo_gym_examples.url(RESOURCES[environment])}/verify",
            json={**row, "response": response},
        )
    ours = await load_environment(environment).verify(row, response)
    if reward_on_crash is not None:  # a deliberate difference (docs/nemo_gym_compat.md)
        assert answer.status_code == 500, answer.text
        assert ours["reward"] == reward_on_crash
        return
    assert answer.status_code == 200, answer.text
    theirs = answer.json()
    fields = (
        set(theirs)
        - NOT_VERIFIER_FIELDS
        - set(row)
        - {
            "mask_sample",
            "failure_kind",
            "failure_reason",
        }
    )
    assert {k: ours[k] for k in fields} == {k: theirs[k] for k in fields}
    assert set(ours) == fields
