"""Progress of a long command when stderr is not a terminal: periodic lines, as text or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.pipeline import AGENT_ONE, cli_env, gymstream, single_tool_input

from gymstream.cli import exit_codes

pytestmark = pytest.mark.kafka

ROWS, REPEATS = 40, 2


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    env = cli_env(kafka_bootstrap)
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    return env


def test_produce_prints_progress_lines_on_a_non_terminal_stderr(
    env: dict[str, str], tmp_path: Path
) -> None:
    data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
    args = ["produce", str(data), "--num-repeats", str(REPEATS), "--run-id", "p1"]
    result = gymstream(*args, "--rejects", str(tmp_path / "rejects.jsonl"), env=env)
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stderr.splitlines() if "gymstream.progress" in x]
    assert lines, result.stderr
    # the last line is written at the end, with the final figures
    assert lines[-1].endswith(
        f"produce p1: {ROWS * REPEATS} rollouts sent, "
        + lines[-1].split("rollouts sent, ", 1)[1].split(",", 1)[0]
        + f", 0 rejected; {ROWS} rows read, 0 skipped (done before)"
    ), lines[-1]
    assert " INFO gymstream.progress: " in lines[-1]


def test_no_progress_turns_the_lines_off(env: dict[str, str], tmp_path: Path) -> None:
    data = single_tool_input(tmp_path / "in.jsonl", rows=4)
    args = ["produce", str(data), "--run-id", "p2", "--no-progress"]
    result = gymstream(*args, "--rejects", str(tmp_path / "rejects.jsonl"), env=env)
    assert result.returncode == 0, result.stderr
    assert "gymstream.progress" not in result.stderr, result.stderr


def test_json_log_lines_parse_and_carry_the_figures(env: dict[str, str], tmp_path: Path) -> None:
    how = "option"  # GYMSTREAM_LOG_FORMAT: tests/unit/cli/test_progress_display.py
    data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
    with (tmp_path / "in.jsonl").open("a") as handle:
        handle.write("{not json\n")  # a bad row: its line is printed, not logged
    args = ["produce", str(data), "--num-repeats", str(REPEATS), "--run-id", f"j-{how}"]
    args += ["--rejects", str(tmp_path / "rejects.jsonl")]
    result = gymstream("--log-format", "json", *args, env=env)
    assert result.returncode == exit_codes.PARTIAL, result.stderr  # a row was rejected
    records = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{")  # rejected rows are printed lines, not log records
    ]
    assert records, result.stderr
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    progress = [r for r in records if r["logger"] == "gymstream.progress"]
    assert progress, result.stderr
    last = progress[-1]
    assert (last["command"], last["done"], last["failed"], last["unit"]) == (
        f"produce j-{how}",
        ROWS * REPEATS,
        1,
        "rollouts sent",
    )
    assert last["level"] == "INFO"
    assert last["message"].startswith(f"produce j-{how}: {ROWS * REPEATS} rollouts sent")
    non_json = [
        x for x in result.stderr.splitlines() if x.strip() and not x.startswith(("{", "rejected"))
    ]
    # besides the rejected row, only the last line, the counts for a script: cli/exit_codes.py
    assert non_json == [non_json[-1]], non_json
    assert non_json[-1].startswith("error: completed with problems: 1 rows rejected"), non_json
