"""TRL's rollout_func output from NeMo Gym results: hand-made rows, as TRL's NeMo Gym example
builds prompt_ids, completion_ids, env_mask, logprobs and env_reward."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from gymstream.errors import TrajectoryError
from gymstream.integrations.trl import env_reward, rollout_batch, rollout_func, rows_of
from gymstream.nemo_gym.config.agents import load_config


def _turn(prompt: list[int], generation: list[int], kind: str = "function_call") -> dict[str, Any]:
    return {
        "type": kind,
        "prompt_token_ids": prompt,
        "generation_token_ids": generation,
        "generation_log_probs": [-0.5 - i for i in range(len(generation))],
    }


def _result(output: list[dict[str, Any]], reward: float) -> dict[str, Any]:
    return {"response": {"output": output}, "reward": reward}


def test_two_turns_with_a_tool_output_between_them() -> None:
    first = _turn([1, 2, 3], [10, 11])
    tool = {"type": "function_call_output", "output": "42"}  # no token fields: skipped
    second = _turn([1, 2, 3, 10, 11, 20, 21, 22], [30], kind="message")
    batch = rollout_batch([_result([first, tool, second], 1.0)])
    assert batch == {
        "prompt_ids": [[1, 2, 3]],
        "completion_ids": [[10, 11, 20, 21, 22, 30]],
        "env_mask": [[1, 1, 0, 0, 0, 1]],
        "logprobs": [[-0.5, -1.5, 0.0, 0.0, 0.0, -0.5]],
        "env_reward": [1.0],
    }


def test_one_completion_per_result_in_order() -> None:
    results = [_result([_turn([5], [6 + i])], float(i)) for i in range(4)]
    batch = rollout_batch(results)
    assert batch["completion_ids"] == [[6], [7], [8], [9]]
    assert batch["env_reward"] == [0.0, 1.0, 2.0, 3.0]
    assert batch["env_mask"] == [[1]] * 4


def test_a_turn_that_rewrites_the_history_names_the_row() -> None:
    good = _result([_turn([1], [2])], 1.0)
    bad = _result([_turn([1, 2], [3]), _turn([1, 9, 3], [4])], 0.0)  # not prefix-consistent
    with pytest.raises(TrajectoryError, match=r"^row 1 of the batch: .*turn 1"):
        rollout_batch([good, bad])


def test_a_row_without_token_ids_is_an_error_not_an_empty_completion() -> None:
    plain = _result([{"type": "message", "content": []}], 1.0)
    with pytest.raises(TrajectoryError, match=r"^row 0 of the batch: .*return_token_id_info"):
        rollout_batch([plain])


def test_mismatched_log_probs_are_refused() -> None:
    turn = _turn([1], [2, 3])
    turn["generation_log_probs"] = [-1.0]
    with pytest.raises(TrajectoryError, match="row 0 of the batch"):
        rollout_batch([_result([turn], 1.0)])


def test_rows_of_prompts_take_the_trainers_sampling_settings() -> None:
    params: dict[str, Any] = {"input": "hi", "temperature": 0.1}
    row = {"responses_create_params": params, "agent_ref": {"name": "a"}}
    args = SimpleNamespace(temperature=0.9, top_p=0.8, max_completion_length=64)
    [from_json, from_dict] = rows_of([json.dumps(row), row], args)
    assert from_json == from_dict
    assert from_json["responses_create_params"] == {
        "input": "hi",
        "temperature": 0.9,
        "top_p": 0.8,
        "max_output_tokens": 64,
    }
    assert params["temperature"] == 0.1  # the caller's row untouched


def test_env_reward_passes_the_rewards_on() -> None:
    assert env_reward(["a", "b"], env_reward=[1, 0.5]) == [1.0, 0.5]
    with pytest.raises(ValueError, match="env_reward"):
        env_reward(["a"])


def test_ahead_is_refused_for_trl_with_the_reason() -> None:
    """TRL gives the prompts only when it wants their completions: no batch can be ahead."""
    with pytest.raises(ValueError, match="AheadRuns"):
        rollout_func(load_config(), ahead=1)
    rollout_func(load_config(), ahead=0)  # request/response: built, nothing started yet
