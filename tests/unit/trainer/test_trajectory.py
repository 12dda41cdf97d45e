"""The trainer's view of a rollout: one token sequence, its loss mask and aligned log-probs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gymstream.errors import TrajectoryError
from gymstream.trainer.tokens import token_trajectory


def two_turn_row() -> dict[str, Any]:
    """A hand-built two-turn rollout, shaped as NeMo Gym 0.7.0 writes it.

    Turn 0: prompt [1, 2, 3] (system + user), the model generates [10, 11] and calls a tool.
    The tool output and the template's markers come back as [20, 21, 22], so turn 1's prompt
    is [1, 2, 3, 10, 11, 20, 21, 22]; the model generates [30, 31, 32] and answers.
    The fields sit on the last item of each turn (the function_call, then the message).
    """
    return {
        "responses_create_params": {"input": [{"role": "user", "content": "weather in sf?"}]},
        "response": {
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "function_call",
                    "name": "get_weather",
                    "arguments": '{"city":"sf"}',
                    "call_id": "c1",
                    "prompt_token_ids": [1, 2, 3],
                    "generation_token_ids": [10, 11],
                    "generation_log_probs": [-0.5, -0.25],
                },
                {"type": "function_call_output", "call_id": "c1", "output": '{"city":"sf"}'},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "cold"}],
                    "prompt_token_ids": [1, 2, 3, 10, 11, 20, 21, 22],
                    "generation_token_ids": [30, 31, 32],
                    "generation_log_probs": [-1.0, -2.0, -3.0],
                },
            ]
        },
        "reward": 1.0,
        "_ng_task_index": 4,
        "_ng_rollout_index": 1,
        "agent_ref": {"name": "weather_agent"},
    }


def test_two_turns_give_one_sequence_with_mask_and_aligned_log_probs() -> None:
    view = token_trajectory(two_turn_row(), policy_version=7)
    assert view.token_ids == [1, 2, 3, 10, 11, 20, 21, 22, 30, 31, 32]
    assert view.loss_mask == [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1]
    assert view.log_probs == [0.0, 0.0, 0.0, -0.5, -0.25, 0.0, 0.0, 0.0, -1.0, -2.0, -3.0]
    assert view.turn_spans == [(3, 5), (8, 11)]
    assert view.policy_versions == [7, 7]
    assert view.prompt_length == 3
    assert (view.turns, view.generated_tokens) == (2, 5)


def test_each_turn_gets_its_own_version_when_given() -> None:
    view = token_trajectory(two_turn_row(), turn_versions=[3, 4])
    assert view.policy_versions == [3, 4]
    with pytest.raises(TrajectoryError, match="1 turn versions given for 2 turns"):
        token_trajectory(two_turn_row(), turn_versions=[3])


def test_a_row_without_token_ids_is_refused_with_the_setting_to_turn_on() -> None:
    row = two_turn_row()
    for item in row["response"]["output"]:
        for name in ("prompt_token_ids", "generation_token_ids", "generation_log_probs"):
            item.pop(name, None)
    with pytest.raises(TrajectoryError, match=r"rollout weather_agent/4/1: no output item"):
        token_trajectory(row)
    with pytest.raises(TrajectoryError, match="return_token_id_information"):
        token_trajectory(row)


def test_a_turn_that_rerenders_the_history_is_refused() -> None:
    row = two_turn_row()
    row["response"]["output"][3]["prompt_token_ids"] = [1, 2, 3, 10, 99, 20, 21, 22]
    with pytest.raises(TrajectoryError, match=r"turn 1 \(response.output\[3\]\).*token 4 is 99"):
        token_trajectory(row)
    row["response"]["output"][3]["prompt_token_ids"] = [1, 2, 3, 10]
    with pytest.raises(TrajectoryError, match="4 tokens, fewer than the 5 before it"):
        token_trajectory(row)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"generation_log_probs": [-0.5]}, "2 generation_token_ids but 1 generation_log_probs"),
        ({"generation_token_ids": [10, "11"]}, "generation_token_ids: expected a list of integers"),
        ({"prompt_token_ids": None}, "prompt_token_ids: expected a list of integers"),
        ({"generation_log_probs": [-0.5, True]}, "expected a list of numbers"),
    ],
)
def test_malformed_fields_are_refused_naming_the_item(change: dict[str, Any], problem: str) -> None:
    row = two_turn_row()
    row["response"]["output"][1].update(change)
    with pytest.raises(TrajectoryError, match=r"response.output\[1\]") as info:
        token_trajectory(row)
    assert problem in str(info.value)


def test_partial_fields_are_refused() -> None:
    row = two_turn_row()
    del row["response"]["output"][1]["generation_log_probs"]
    with pytest.raises(TrajectoryError, match=r"output\[1\] lacks generation_log_probs"):
        token_trajectory(row)


def test_a_row_without_a_response_is_refused() -> None:
    row = copy.deepcopy(two_turn_row())
    del row["response"]
    with pytest.raises(TrajectoryError, match=r"no response\.output list"):
        token_trajectory(row)
