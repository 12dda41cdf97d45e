"""The dataset options of produce and collect: repeats, overrides, input checks, run ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from gymstream.cli.configure import gym_config
from gymstream.cli.dataset import (
    check_input,
    new_run_id,
    overrides_value,
    produce_options,
    repeats_value,
)

OTHER = "example_multi_step_simple_agent"


def exit_of(excinfo: pytest.ExceptionInfo[typer.Exit]) -> int:
    return excinfo.value.exit_code


def test_repeats_default_to_one_and_take_num_repeats() -> None:
    assert repeats_value(None, None) == 1
    assert repeats_value(4, None) == 4
    assert repeats_value(4, []) == 4


def test_per_agent_repeats_take_num_repeats_as_the_default() -> None:
    assert repeats_value(None, [f"{OTHER}=8"]) == {OTHER: 8}
    assert repeats_value(3, [f"{OTHER}=8"]) == {OTHER: 8, "_default": 3}
    assert repeats_value(3, [f"{OTHER}=8", "_default=5"]) == {OTHER: 8, "_default": 5}


def test_a_bad_per_agent_repeat_exits_2_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(typer.Exit) as info:
        repeats_value(None, ["a=0"])
    assert exit_of(info) == 2
    err = capsys.readouterr().err
    assert "error: --num-repeats-per-agent: num_repeats 'a=0': the count must be at least 1" in err


def test_overrides_parse_json_values_and_keep_the_last_of_a_key() -> None:
    assert overrides_value(None) == {}
    values = ["temperature=0.6", "tool_choice=auto", "temperature=0.7", "stop=[1]"]
    assert overrides_value(values) == {"temperature": 0.7, "tool_choice": "auto", "stop": [1]}


def test_a_bad_override_exits_2_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as info:
        overrides_value(["temperature"])
    assert exit_of(info) == 2
    assert "error: --responses-create-params: override 'temperature'" in capsys.readouterr().err


def test_check_input_refuses_missing_and_empty_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as missing:
        check_input(tmp_path / "nope.jsonl")
    assert exit_of(missing) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    with pytest.raises(typer.Exit) as nothing:
        check_input(empty)
    assert exit_of(nothing) == 1
    assert "empty.jsonl: no rows to publish: the file is empty" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text("{}\n")
    check_input(good)  # no exit


def test_new_run_ids_are_timestamped_and_unique() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_id) for run_id in ids)


def test_produce_options_carry_the_cli_values(tmp_path: Path) -> None:
    cfg = gym_config(None)
    options = produce_options(
        tmp_path / "in.jsonl",
        cfg,
        run_id=None,
        agent_name=OTHER,
        repeats={OTHER: 2},
        limit=10,
        params=["temperature=0.5"],
        fail_fast=True,
        rejects_path=tmp_path / "rejects.jsonl",
        rollout_seed=7,
    )
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", options.run_id)
    assert set(options.known_agents) == set(cfg.agents)
    assert OTHER in options.known_agents
    assert (options.default_agent, options.num_repeats, options.limit) == (OTHER, {OTHER: 2}, 10)
    assert options.overrides == {"temperature": 0.5}
    assert options.fail_fast is True
    assert options.rollout_seed == 7
    assert options.materialized_path is None
    given = produce_options(
        tmp_path / "in.jsonl",
        cfg,
        run_id="mine",
        agent_name=None,
        repeats=1,
        limit=None,
        params=None,
        fail_fast=False,
        rejects_path=tmp_path / "rejects.jsonl",
    )
    assert given.run_id == "mine"
    assert given.overrides == {}
