"""Expansion into rollouts: order a a b b c c, per-agent repeats, NeMo Gym task indices."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gymstream.nemo_gym.rows.reader import InputRow
from gymstream.nemo_gym.rows.rollouts import Rollout, expand, parse_repeats

AGENT = "example_single_tool_call_simple_agent"
OTHER = "example_multi_step_simple_agent"


def row(agent: str | None = AGENT, **params: Any) -> dict[str, Any]:
    """A row for ``agent`` (None: no agent_ref); ``params`` make its bytes differ."""
    ref = {} if agent is None else {"agent_ref": {"name": agent}}
    return {"responses_create_params": {"input": "hi", **params}, **ref}


def input_row(n: int, value: dict[str, Any], agent: str = AGENT) -> InputRow:
    return InputRow(line=n, row=value, agent=agent, raw=msgspec.json.encode(value))


def keys(rollouts: list[Rollout]) -> list[tuple[str, int, int, int]]:
    return [(r.agent, r.task_index, r.rollout_index, r.line) for r in rollouts]


def test_expand_repeats_in_order_aabbcc() -> None:
    rows = [input_row(n, row(question=n)) for n in (1, 2, 3)]
    rollouts = list(expand(rows, num_repeats=2))
    assert keys(rollouts) == [
        (AGENT, 0, 0, 1),
        (AGENT, 0, 1, 1),
        (AGENT, 1, 0, 2),
        (AGENT, 1, 1, 2),
        (AGENT, 2, 0, 3),
        (AGENT, 2, 1, 3),
    ]
    assert rollouts[2].row is rows[1].row


def test_expand_per_agent_repeats_with_default() -> None:
    rows = [
        input_row(1, row(OTHER), OTHER),
        input_row(2, row("third"), "third"),
        input_row(3, row()),
    ]
    rollouts = list(expand(rows, num_repeats={OTHER: 3, "_default": 2}))
    assert keys(rollouts) == [
        (OTHER, 0, 0, 1),
        (OTHER, 0, 1, 1),
        (OTHER, 0, 2, 1),
        ("third", 1, 0, 2),
        ("third", 1, 1, 2),
        (AGENT, 2, 0, 3),
        (AGENT, 2, 1, 3),
    ]


def test_expand_map_without_default_repeats_others_once() -> None:
    rows = [input_row(1, row()), input_row(2, row(OTHER), OTHER)]
    assert keys(list(expand(rows, num_repeats={OTHER: 2}))) == [
        (AGENT, 0, 0, 1),
        (OTHER, 1, 0, 2),
        (OTHER, 1, 1, 2),
    ]


def test_identical_lines_share_a_task_and_continue_rollout_indices() -> None:
    same = row()
    rows = [input_row(1, same), input_row(2, row(question=2)), input_row(3, same)]
    rollouts = list(expand(rows, num_repeats=2))
    assert keys(rollouts) == [
        (AGENT, 0, 0, 1),
        (AGENT, 0, 1, 1),
        (AGENT, 1, 0, 2),
        (AGENT, 1, 1, 2),
        (AGENT, 0, 2, 3),
        (AGENT, 0, 3, 3),
    ]
    assert len({(r.task_index, r.rollout_index) for r in rollouts}) == len(rollouts)


def test_identical_lines_for_different_agents_are_different_tasks() -> None:
    rows = [input_row(1, row(None)), input_row(2, row(None), OTHER)]
    assert keys(list(expand(rows, num_repeats=1))) == [(AGENT, 0, 0, 1), (OTHER, 1, 0, 2)]


@pytest.mark.parametrize("bad", [0, -1, True, {OTHER: 0}, {"_default": 0}, {OTHER: 1.5}])
def test_expand_rejects_bad_counts_at_once(bad: Any) -> None:
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        expand([], num_repeats=bad)


# --- command-line counts -----------------------------------------------------------------------


def test_parse_repeats() -> None:
    assert parse_repeats([f"{OTHER}=8", " _default = 4 "]) == {OTHER: 8, "_default": 4}
    assert parse_repeats([]) == {}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["8"], "num_repeats '8': expected AGENT=N, e.g. example_multi_step_simple_agent=8 or"),
        (["=8"], "num_repeats '=8': expected AGENT=N"),
        (["a=x"], "num_repeats 'a=x': 'x' is not a whole number"),
        (["a=0"], "num_repeats 'a=0': the count must be at least 1, got 0"),
        (["a=1", "a=2"], "num_repeats 'a=2': 'a' is given twice; give it once"),
    ],
)
def test_parse_repeats_errors(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        parse_repeats(values)
