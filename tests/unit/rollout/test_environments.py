"""Environments: loading by name, tool outputs, verifiers against NeMo Gym's recorded rollouts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.nemo_gym_rows import function_call

from gymstream.errors import ConfigError, EnvironmentNotFoundError
from gymstream.nemo_gym.servers.tool_answers import ToolText, tool_output_text
from gymstream.rollout.environment import Environment, list_environments, load_environment

ENVIRONMENTS = Path(__file__).resolve().parents[3] / "environments"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recorded_tool_outputs(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], str]]:
    """(tool name, arguments, recorded output text) for every call in recorded rollouts."""
    found = []
    for row in rows:
        output = row["response"]["output"]
        calls = {i["call_id"]: i for i in output if i["type"] == "function_call"}
        for item in output:
            if item["type"] == "function_call_output":
                call = calls[item["call_id"]]
                found.append((call["name"], json.loads(call["arguments"]), item["output"]))
    return found


def test_list_environments_finds_both_examples() -> None:
    names = list_environments()
    assert "example_single_tool_call" in names
    assert "example_multi_step" in names
    assert names == sorted(names)


@pytest.mark.parametrize("name", ["example_single_tool_call", "example_multi_step"])
def test_load_environment_returns_environment(name: str) -> None:
    env = load_environment(name)
    assert isinstance(env, Environment)
    assert env.name == name
    assert env.tools


def test_unknown_environment_lists_known_ones() -> None:
    with pytest.raises(EnvironmentNotFoundError) as info:
        load_environment("no_such_env")
    message = str(info.value)
    assert "no_such_env" in message
    assert "example_multi_step" in message
    assert "example_single_tool_call" in message
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize("name", ["example_single_tool_call", "example_multi_step"])
def test_tool_outputs_match_nemo_gym_text_exactly(name: str) -> None:
    env = load_environment(name)
    rows = read_jsonl(ENVIRONMENTS / name / "data" / "example_rollouts.jsonl")
    recorded = recorded_tool_outputs(rows)
    assert recorded, "the reference rollouts hold tool calls"
    for tool_name, arguments, text in recorded:
        result = env.tools[tool_name](env.new_session(rows[0]), arguments)
        # the recordings predate 0.7.0 (json.dumps spacing): same JSON, 0.7.0's compact text
        assert json.loads(tool_output_text(result)) == json.loads(text)
        assert tool_output_text(result) == json.dumps(
            json.loads(text), separators=(",", ":"), ensure_ascii=False
        )


def test_synonym_value_is_sum_of_code_points() -> None:
    env = load_environment("example_multi_step")
    assert env.tools["get_synonym_value"](None, {"synonym": "Blazing"}) == {"synonym_value": 711}
    assert env.tools["get_synonym_value"](None, {"synonym": "Hot"}) == {"synonym_value": 299}


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_synonym_value", {}),
        ("get_synonym_value", {"synonym": 3}),
        ("extract_synonym_values", {"synonym_values": "711"}),
        ("extract_synonym_values", {"synonym_values": [1, 2.5]}),
        ("extract_synonym_values", ["711"]),
    ],
)
def test_multi_step_tools_answer_422_texts_for_bad_arguments(tool: str, arguments: Any) -> None:
    env = load_environment("example_multi_step")
    result = env.tools[tool](None, arguments)
    assert isinstance(result, ToolText)
    detail = json.loads(result.text)["detail"]
    assert detail
    assert all(error["loc"][0] == "body" for error in detail)


def test_multi_step_tools_coerce_as_pydantic_lax_mode_does() -> None:
    env = load_environment("example_multi_step")
    assert env.tools["extract_synonym_values"](None, {"synonym_values": [1, "2", True]}) == {
        "success": True
    }


def test_get_weather_without_city_answers_fastapis_422_text() -> None:
    env = load_environment("example_single_tool_call")
    result = env.tools["get_weather"](None, {"town": "sf"})
    assert isinstance(result, ToolText)
    # the recorded answer of NeMo Gym 0.7.0's server (nemo-gym-protocol/stc_04)
    assert result.text == (
        '{"detail":[{"type":"missing","loc":["body","city"],"msg":"Field required",'
        '"input":{"town":"sf"}}]}'
    )


async def test_multi_step_verifier_reproduces_recorded_rollouts() -> None:
    env = load_environment("example_multi_step")
    inputs = read_jsonl(ENVIRONMENTS / "example_multi_step" / "data" / "example.jsonl")
    recorded = read_jsonl(ENVIRONMENTS / "example_multi_step" / "data" / "example_rollouts.jsonl")
    assert len(recorded) == 5
    metric_keys = [
        "reward",
        "parsed_synonym_values",
        "accuracy",
        "set_overlap",
        "order_instruction_following_failure",
        "original_term_minefield_hit",
    ]
    by_user = {row["responses_create_params"]["input"][-1]["content"]: row for row in inputs}
    for expected in recorded:
        row = by_user[expected["responses_create_params"]["input"][-1]["content"]]
        result = await env.verify(row, expected["response"])
        assert {k: result[k] for k in metric_keys} == {k: expected[k] for k in metric_keys}


def multi_step_row(expected: list[int]) -> dict[str, Any]:
    return {
        "responses_create_params": {"input": "q"},
        "expected_synonym_values": expected,
        "minefield_label": "Hot",
        "minefield_label_value": 299,
    }


def extract_call(arguments: str) -> dict[str, Any]:
    return function_call("extract_synonym_values", arguments)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        # right values, wrong order
        (
            [extract_call('{"synonym_values": [407, 711]}')],
            {
                "reward": 0.0,
                "accuracy": False,
                "set_overlap": 1.0,
                "order_instruction_following_failure": True,
                "original_term_minefield_hit": False,
            },
        ),
        # the term's own value: minefield
        (
            [extract_call('{"synonym_values": [711, 299]}')],
            {
                "reward": 0.0,
                "accuracy": False,
                "set_overlap": 0.5,
                "order_instruction_following_failure": False,
                "original_term_minefield_hit": True,
            },
        ),
        # only the LAST extract call counts
        (
            [
                extract_call('{"synonym_values": [1]}'),
                extract_call('{"synonym_values": [711, 407]}'),
            ],
            {
                "reward": 1.0,
                "accuracy": True,
                "set_overlap": 1.0,
                "order_instruction_following_failure": False,
                "original_term_minefield_hit": False,
            },
        ),
        # no extract call at all
        (
            [],
            {
                "reward": 0.0,
                "accuracy": False,
                "set_overlap": 0.0,
                "order_instruction_following_failure": False,
                "original_term_minefield_hit": False,
            },
        ),
        # arguments NeMo Gym decodes as is: 1.0 equals 1, reported as list[int]
        (
            [extract_call('{"synonym_values": [711.0, "407"]}')],
            {
                "reward": 0.0,
                "parsed_synonym_values": [711, 407],
                "accuracy": False,
                "set_overlap": 0.5,
                "order_instruction_following_failure": False,
                "original_term_minefield_hit": False,
            },
        ),
        # unparseable arguments count as [] (NeMo Gym: a 500; docs/nemo_gym_compat.md)
        (
            [extract_call("{not json")],
            {
                "reward": 0.0,
                "accuracy": False,
                "set_overlap": 0.0,
                "order_instruction_following_failure": False,
                "original_term_minefield_hit": False,
            },
        ),
    ],
)
async def test_multi_step_verifier_metrics(
    output: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    env = load_environment("example_multi_step")
    result = await env.verify(multi_step_row([711, 407]), {"output": output})
    assert {k: result[k] for k in expected} == expected


async def test_single_tool_call_verifier_rewards_a_get_weather_call_only() -> None:
    env = load_environment("example_single_tool_call")
    recorded = read_jsonl(
        ENVIRONMENTS / "example_single_tool_call" / "data" / "example_rollouts.jsonl"
    )
    for row in recorded:
        called = any(
            i["type"] == "function_call" and i["name"] == "get_weather"
            for i in row["response"]["output"]
        )
        result = await env.verify(row, row["response"])
        assert result == {"reward": float(called)}
        assert result["reward"] == row["reward"]  # the recording's own reward


def test_config_yaml_declares_the_simple_agent() -> None:
    for name in ("example_single_tool_call", "example_multi_step"):
        config = yaml.safe_load((ENVIRONMENTS / name / "config.yaml").read_text())
        agent = config["agents"][f"{name}_simple_agent"]
        assert agent == {
            "environment": name,
            "model": "policy_model",
            "max_steps": 16,
            "concurrency": 256,
        }


def test_data_is_nemo_gyms_example_rows() -> None:
    for name in ("example_single_tool_call", "example_multi_step"):
        rows = read_jsonl(ENVIRONMENTS / name / "data" / "example.jsonl")
        assert len(rows) == 5
        assert all("responses_create_params" in row for row in rows)


@pytest.fixture
def extra_environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder searched as part of the environments package."""
    import environments

    monkeypatch.setattr(environments, "__path__", [*environments.__path__, str(tmp_path)])
    for name in ("broken_env", "empty_env", "wrong_env"):
        monkeypatch.delitem(sys.modules, f"environments.{name}", raising=False)
    return tmp_path


def test_environment_that_fails_to_import_names_itself(extra_environments: Path) -> None:
    (extra_environments / "broken_env").mkdir()
    (extra_environments / "broken_env" / "__init__.py").write_text("import no_such_module_xyz\n")
    assert "broken_env" in list_environments()
    with pytest.raises(ConfigError, match=r"broken_env.*no_such_module_xyz") as info:
        load_environment("broken_env")
    assert isinstance(info.value.__cause__, ImportError)


def test_environment_without_environment_export(extra_environments: Path) -> None:
    (extra_environments / "empty_env").mkdir()
    (extra_environments / "empty_env" / "__init__.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match="does not export ENVIRONMENT"):
        load_environment("empty_env")


def test_environment_export_of_wrong_type(extra_environments: Path) -> None:
    (extra_environments / "wrong_env").mkdir()
    (extra_environments / "wrong_env" / "__init__.py").write_text("ENVIRONMENT = 42\n")
    with pytest.raises(ConfigError, match="not an Environment"):
        load_environment("wrong_env")


def test_an_environment_named_module_colon_attribute_is_loaded_from_that_module() -> None:
    env = load_environment("environments.example_multi_step:ENVIRONMENT")
    assert env is load_environment("example_multi_step")
    with pytest.raises(ConfigError, match=r"environments\.example_multi_step:NOPE"):
        load_environment("environments.example_multi_step:NOPE")


def test_an_entry_point_in_the_gymstream_environments_group_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.metadata

    from gymstream.rollout import environment as module

    point = importlib.metadata.EntryPoint(
        name="weather", value="environments.example_single_tool_call:ENVIRONMENT", group="x"
    )

    def entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        return [point] if group == module.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(module.importlib.metadata, "entry_points", entry_points)
    assert load_environment("weather").name == "example_single_tool_call"
    with pytest.raises(EnvironmentNotFoundError, match="weather"):
        load_environment("no_such_env")  # the registered names are listed
