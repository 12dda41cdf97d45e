"""collect.py without a broker: what a report says is missing, and the resume step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gymstream.collect import CollectReport, resume_options
from gymstream.errors import ConfigError
from gymstream.nemo_gym.outputs.files import OutputPaths, read_run_file
from gymstream.produce.producer import ProduceOptions
from gymstream.sink.loop import SinkReport

AGENT = "example_single_tool_call_simple_agent"


def options(tmp_path: Path, run_id: str = "run-1") -> ProduceOptions:
    return ProduceOptions(input_path=tmp_path / "in.jsonl", run_id=run_id, known_agents=[AGENT])


def result_row(task: int, rollout: int, **extra: Any) -> str:
    row = {
        "agent_ref": {"name": AGENT},
        "_ng_task_index": task,
        "_ng_rollout_index": rollout,
        "responses_create_params": {"input": "hi"},
        **extra,
    }
    return json.dumps(row) + "\n"


# --- CollectReport.missing --------------------------------------------------------------------


def test_missing_is_unknown_without_a_sink_or_its_expectation() -> None:
    assert CollectReport().missing == -1
    assert CollectReport(sink=SinkReport("r")).missing == -1


def test_missing_counts_the_expected_rollouts_not_accounted_for() -> None:
    sink = SinkReport("r", expected={"a": 4, "b": 2}, accounted=5)
    assert CollectReport(sink=sink).missing == 1
    sink.accounted = 6
    assert CollectReport(sink=sink).missing == 0
    sink.accounted = 7  # never negative
    assert CollectReport(sink=sink).missing == 0


# --- resume_options ---------------------------------------------------------------------------


def test_a_fresh_output_is_claimed_and_the_options_are_unchanged(tmp_path: Path) -> None:
    paths = OutputPaths(tmp_path / "out" / "rollouts.jsonl")
    given = options(tmp_path)
    resumed, produced = resume_options(paths, given, overwrite=False)
    assert resumed is False
    assert produced is given
    assert read_run_file(paths) == {"run_id": "run-1"}


def test_a_resume_skips_what_is_done_and_retries_non_terminal_failures(tmp_path: Path) -> None:
    paths = OutputPaths(tmp_path / "rollouts.jsonl")
    resume_options(paths, options(tmp_path), overwrite=False)
    paths.output.write_text(result_row(0, 0, reward=1.0))
    paths.failures.write_text(
        result_row(0, 1, _ng_attempt_index=0, _ng_failure_terminal=False)
        + result_row(1, 0, _ng_attempt_index=0, _ng_failure_terminal=True)
        + result_row(1, 1, _ng_attempt_index=2, _ng_failure_terminal=False)
    )
    resumed, produced = resume_options(paths, options(tmp_path), overwrite=False, max_attempts=3)
    assert resumed is True
    done = {f"run-1/{AGENT}/0/0", f"run-1/{AGENT}/1/0", f"run-1/{AGENT}/1/1"}
    assert set(produced.skip_rollouts) == done
    assert dict(produced.attempts) == {f"run-1/{AGENT}/0/1": 1}
    # the retried failure moved to the history; the run file records its attempt
    assert '_ng_rollout_index": 1' in paths.failures_history.read_text()
    assert len(paths.failures.read_text().splitlines()) == 2
    assert read_run_file(paths) == {"run_id": "run-1", "retried": {f"run-1/{AGENT}/0/1": 1}}


def test_another_runs_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    paths = OutputPaths(tmp_path / "rollouts.jsonl")
    resume_options(paths, options(tmp_path, "run-1"), overwrite=False)
    paths.output.write_text(result_row(0, 0))
    with pytest.raises(ConfigError, match="pass --run-id run-1 to resume it"):
        resume_options(paths, options(tmp_path, "run-2"), overwrite=False)
    assert paths.output.exists()
    resumed, _ = resume_options(paths, options(tmp_path, "run-2"), overwrite=True)
    assert resumed is False
    assert not paths.output.exists()
    assert read_run_file(paths) == {"run_id": "run-2"}
