"""Output files: torn tails, run binding, resume plans, aggregate metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gymstream.errors import ConfigError
from gymstream.nemo_gym.outputs.aggregate import aggregate_metrics
from gymstream.nemo_gym.outputs.files import (
    OutputPaths,
    claim_output,
    hold_output,
    read_done_ids,
    read_run_file,
    repair_torn_tail,
)
from gymstream.nemo_gym.outputs.resume import apply_plan, plan_resume


def out_row(agent: str, task: int, rollout: int, reward: float = 1.0) -> dict:
    return {
        "reward": reward,
        "accuracy": reward == 1.0,
        "_ng_task_index": task,
        "_ng_rollout_index": rollout,
        "agent_ref": {"name": agent},
    }


def fail_row(agent: str, task: int, rollout: int, *, terminal: bool, attempt: int = 0) -> dict:
    return {
        "question": f"q{task}",
        "_ng_task_index": task,
        "_ng_rollout_index": rollout,
        "agent_ref": {"name": agent},
        "_ng_failure_class": "model_http_5xx",
        "_ng_failure_terminal": terminal,
        "_ng_attempt_index": attempt,
        "_gs_attempts": 4,
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_torn_tail_is_cut_to_the_last_full_line(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    assert repair_torn_tail(path) == len(b'{"c": ')
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert repair_torn_tail(path) == 0  # a whole file is left alone


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}')
    assert repair_torn_tail(path) == 0
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    single = tmp_path / "one.jsonl"
    single.write_bytes(b'{"only": [1, 2]}')
    assert repair_torn_tail(single) == 0
    assert single.read_bytes() == b'{"only": [1, 2]}\n'


def test_torn_tail_without_any_newline_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(b'{"half')
    repair_torn_tail(path)
    assert path.read_bytes() == b""


def test_claim_output_binds_refuses_and_resumes(tmp_path: Path) -> None:
    paths = OutputPaths(tmp_path / "out.jsonl")
    assert claim_output(paths, "r1", overwrite=False) is False
    assert read_run_file(paths) == {"run_id": "r1"}
    write_jsonl(paths.output, [out_row("a", 0, 0)])
    assert claim_output(paths, "r1", overwrite=False) is True  # same run: resume
    with pytest.raises(ConfigError, match="--run-id r1"):
        claim_output(paths, "r2", overwrite=False)
    assert paths.output.read_text()  # refused: nothing touched
    assert claim_output(paths, "r2", overwrite=True) is False
    assert not paths.output.exists()
    assert read_run_file(paths) == {"run_id": "r2"}


def test_hold_output_refuses_a_foreign_output_before_any_lock(tmp_path: Path) -> None:
    paths = OutputPaths(tmp_path / "out.jsonl")
    write_jsonl(paths.output, [out_row("a", 0, 0)])
    with pytest.raises(ConfigError, match="--overwrite"), hold_output(paths, "r1", overwrite=False):
        pytest.fail("a foreign output was held")
    assert not paths.lock.exists()


def test_hold_output_locks_from_before_the_claim(tmp_path: Path) -> None:
    paths = OutputPaths(tmp_path / "out.jsonl")
    with hold_output(paths, "r1", overwrite=False):
        assert paths.lock.read_text().startswith("pid ")
        assert not paths.run_file.exists()  # the claim comes after, under the lock
        second = hold_output(paths, "r1", overwrite=False)
        with pytest.raises(ConfigError, match="is being written by pid "), second:
            pytest.fail("two writers held one output")
        assert claim_output(paths, "r1", overwrite=False) is False


def test_claim_output_refuses_a_foreign_file_without_run_file(tmp_path: Path) -> None:
    paths = OutputPaths(tmp_path / "out.jsonl")
    write_jsonl(paths.output, [out_row("a", 0, 0)])
    with pytest.raises(ConfigError, match="--overwrite"):
        claim_output(paths, "r1", overwrite=False)


@pytest.mark.parametrize("output", [None, b""], ids=["output_absent", "output_empty"])
def test_claim_output_never_empties_failures_without_overwrite(
    output: bytes | None, tmp_path: Path
) -> None:
    paths = OutputPaths(tmp_path / "out.jsonl")
    if output is not None:
        paths.output.write_bytes(output)
    paths.failures.write_bytes(b'{"_ng_failure_class": "model_timeout"}\n')
    with pytest.raises(ConfigError, match="--overwrite"):
        claim_output(paths, "r1", overwrite=False)
    assert paths.failures.read_bytes() == b'{"_ng_failure_class": "model_timeout"}\n'
    assert claim_output(paths, "r1", overwrite=True) is False
    assert not paths.failures.exists()


def test_resume_plan_retries_only_non_terminal_failures_with_attempts_left(
    tmp_path: Path,
) -> None:
    paths = OutputPaths(tmp_path / "out.jsonl")
    claim_output(paths, "r", overwrite=False)
    write_jsonl(paths.output, [out_row("a", 0, 0), out_row("a", 0, 1)])
    write_jsonl(
        paths.failures,
        [
            fail_row("a", 1, 0, terminal=False),  # retried with attempt 1
            fail_row("a", 1, 1, terminal=True),  # terminal: done
            fail_row("a", 2, 0, terminal=False, attempt=2),  # out of attempts (3): done
            fail_row("a", 0, 1, terminal=False),  # already in the output: done
        ],
    )
    plan = plan_resume(paths, "r", max_attempts=3)
    assert plan.done == {"r/a/0/0", "r/a/0/1", "r/a/1/1", "r/a/2/0"}
    assert set(plan.retry) == {"r/a/1/0"}
    task = plan.retry["r/a/1/0"]
    assert (task.agent, task.task_index, task.rollout_index, task.attempt) == ("a", 1, 0, 1)
    assert task.row == {"question": "q1", "agent_ref": {"name": "a"}}  # no _ng_/_gs_ keys
    assert plan.exhausted == 1

    apply_plan(paths, plan)
    assert read_done_ids(paths.failures, "r") == {"r/a/1/1", "r/a/2/0", "r/a/0/1"}
    assert read_done_ids(paths.failures_history, "r") == {"r/a/1/0"}
    assert read_run_file(paths) == {"run_id": "r", "retried": {"r/a/1/0": 1}}


def test_aggregate_metrics_per_agent_and_task(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl(
        path,
        [
            out_row("a", 0, 0, 1.0),
            out_row("a", 0, 1, 0.0),
            out_row("a", 1, 0, 1.0),
            out_row("b", 5, 0, 0.5),
        ],
    )
    metrics = aggregate_metrics(path)
    reward = metrics["a"]["metrics"]["reward"]
    assert reward["mean"] == pytest.approx(2 / 3)
    assert (reward["min"], reward["max"], reward["median"]) == (0.0, 1.0, 1.0)
    assert metrics["a"]["metrics"]["accuracy"]["mean"] == pytest.approx(2 / 3)  # bools count
    assert metrics["a"]["tasks"]["0"]["mean"] == 0.5
    assert metrics["a"]["rollouts"] == 3
    assert "_ng_task_index" not in metrics["a"]["metrics"]
    assert metrics["b"]["metrics"]["reward"]["std"] == 0.0
