"""Turns' token ids on a trajectory, and the prefix-consistency count on the row."""

from __future__ import annotations

from typing import Any

from gymstream.nemo_gym.outputs.output_row import TOKEN_PREFIX_BREAKS, verify_result
from gymstream.nemo_gym.outputs.token_ids import prefix_breaks, turn_tokens


def turn(prompt: list[int], generation: list[int]) -> dict[str, Any]:
    return {
        "type": "function_call",
        "prompt_token_ids": prompt,
        "generation_token_ids": generation,
        "generation_log_probs": [-1.0] * len(generation),
    }


TOOL_OUTPUT = {"type": "function_call_output", "call_id": "c", "output": "1"}


def test_consistent_turns_have_no_breaks() -> None:
    output = [turn([1, 2], [3]), TOOL_OUTPUT, turn([1, 2, 3, 9, 9], [4]), TOOL_OUTPUT]
    assert [t["generation_token_ids"] for t in turn_tokens(output)] == [[3], [4]]
    assert prefix_breaks(output) == 0


def test_a_re_rendered_history_is_counted() -> None:
    changed_prompt = [turn([1, 2], [3]), turn([1, 5, 3, 9], [4])]
    changed_generation = [turn([1, 2], [3]), turn([1, 2, 4, 9], [4]), turn([1, 2, 4, 9, 4], [6])]
    assert prefix_breaks(changed_prompt) == 1
    assert prefix_breaks(changed_generation) == 1  # only the second turn breaks
    assert prefix_breaks([turn([1, 2], [3]), turn([1, 2], [4])]) == 1  # generation dropped


def test_rows_without_token_ids_get_no_flag() -> None:
    assert prefix_breaks([{"type": "message"}, TOOL_OUTPUT]) is None
    row = {"responses_create_params": {}, "id": 1}
    plain = verify_result(row, params={}, response={}, reward=1.0, fields={})
    assert TOKEN_PREFIX_BREAKS not in plain
    flagged = verify_result(
        row, params={}, response={}, reward=1.0, fields={}, token_prefix_breaks=2
    )
    assert flagged[TOKEN_PREFIX_BREAKS] == 2
    assert TOKEN_PREFIX_BREAKS == "_gs_token_prefix_breaks"  # noqa: S105 (a key name)
