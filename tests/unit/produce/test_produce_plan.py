"""The pure half of produce, without a broker: valid rows, rejects, the run's rollouts, messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gymstream.errors import RowError
from gymstream.produce.plan import (
    JsonlFile,
    PlannedRollout,
    ProduceOptions,
    ProduceReport,
    RoundRobin,
    plan_rollouts,
    task_message,
    valid_rows,
)

ONE = "example_single_tool_call_simple_agent"
MULTI = "example_multi_step_simple_agent"
AGENTS = frozenset({ONE, MULTI})


def good(agent: str, question: str) -> dict[str, Any]:
    return {
        "responses_create_params": {"input": question, "temperature": 1.0},
        "agent_ref": {"type": "responses_api_agents", "name": agent},
        "id": question,
    }


def write_input(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_input(
        tmp_path / "in.jsonl",
        [
            good(ONE, "q0"),
            "{not json",
            good(MULTI, "q1"),
            {"responses_create_params": {"input": "hi"}, "agent_ref": {"name": "nope"}},
            good(ONE, "q0"),  # identical to line 1: the same task, rollout indices go on
        ],
    )


def options(path: Path, **changes: Any) -> ProduceOptions:
    return ProduceOptions(input_path=path, run_id="r", known_agents=AGENTS, **changes)


def plan(opts: ProduceOptions, report: ProduceReport, rejects: JsonlFile) -> list[PlannedRollout]:
    return list(plan_rollouts(valid_rows(opts, report, rejects), opts, report))


def test_valid_rows_counts_rows_and_writes_each_reject(dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "rejects.jsonl"
    seen: list[RowError] = []
    report = ProduceReport("r")
    rejects = JsonlFile(path, lazy=True)
    rows = list(valid_rows(options(dataset), report, rejects, seen.append))
    rejects.close()
    assert [r.agent for r in rows] == [ONE, MULTI, ONE]
    assert (report.rows, report.rejected, report.stopped_at) == (3, 2, None)
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(w["line"], w["field"]) for w in written] == [(2, "<line>"), (4, "agent_ref.name")]
    assert [w["error"] for w in written] == [str(e) for e in seen]


def test_fail_fast_stops_at_the_first_bad_row(dataset: Path) -> None:
    report = ProduceReport("r")
    rows = list(valid_rows(options(dataset, fail_fast=True), report, JsonlFile(None)))
    assert len(rows) == 1
    assert report.stopped_at is not None
    assert report.stopped_at.line == 2
    assert report.rejected == 1


def test_a_lazy_rejects_file_is_not_made_for_a_clean_input(tmp_path: Path) -> None:
    data = write_input(tmp_path / "in.jsonl", [good(ONE, "q")])
    path = tmp_path / "rejects.jsonl"
    rejects = JsonlFile(path, lazy=True)
    list(valid_rows(options(data), ProduceReport("r"), rejects))
    rejects.close()
    assert not path.exists()
    JsonlFile(tmp_path / "made" / "m.jsonl").close()  # not lazy: made at once, parents too
    assert (tmp_path / "made" / "m.jsonl").read_bytes() == b""


def test_plan_expands_in_order_with_ids_unique_in_the_run(dataset: Path) -> None:
    report = ProduceReport("r")
    planned = plan(options(dataset, num_repeats={MULTI: 1, "_default": 2}), report, JsonlFile(None))
    assert [(p.agent, p.task_index, p.rollout_index) for p in planned] == [
        (ONE, 0, 0),
        (ONE, 0, 1),
        (MULTI, 1, 0),
        (ONE, 0, 2),
        (ONE, 0, 3),
    ]
    assert [p.rollout_id for p in planned][:3] == [f"r/{ONE}/0/0", f"r/{ONE}/0/1", f"r/{MULTI}/1/0"]
    assert [p.starts_group for p in planned] == [True, False, True, False, False]
    assert report.published == {}  # publishing is the Kafka loop's count
    assert report.expected == {}


def test_plan_skips_what_a_resume_says_is_done_and_counts_it(dataset: Path) -> None:
    report = ProduceReport("r")
    skip = {f"r/{ONE}/0/0", f"r/{MULTI}/1/0"}
    planned = plan(options(dataset, skip_rollouts=skip), report, JsonlFile(None))
    assert [p.rollout_id for p in planned] == [f"r/{ONE}/0/1"]
    assert report.skipped == {ONE: 1, MULTI: 1}
    report.published[ONE] += 1
    assert report.expected == {MULTI: 1, ONE: 2}


def test_plan_applies_overrides_and_the_per_rollout_seed(dataset: Path) -> None:
    opts = options(dataset, overrides={"temperature": 0.6}, rollout_seed=100, limit=1)
    planned = plan(opts, ProduceReport("r"), JsonlFile(None))
    assert [p.row["responses_create_params"] for p in planned] == [
        {"input": "q0", "temperature": 0.6, "seed": 100}
    ]
    assert planned[0].row["id"] == "q0"  # task fields travel whole


def test_task_message_carries_the_plan_and_the_retry_attempt(dataset: Path) -> None:
    rid = f"r/{ONE}/0/0"
    opts = options(dataset, attempts={rid: 2}, policy_version=7, limit=1)
    first = plan(opts, ProduceReport("r"), JsonlFile(None))[0]
    message = task_message(first, opts, created_ms=1234)
    assert (message.run_id, message.rollout_id, message.agent) == ("r", rid, ONE)
    assert (message.task_index, message.rollout_index, message.attempt) == (0, 0, 2)
    assert (message.created_ms, message.policy_version) == (1234, 7)
    assert message.row == first.row


def test_materialized_line_is_the_row_with_the_collectors_stamps(dataset: Path) -> None:
    first = plan(options(dataset, limit=1), ProduceReport("r"), JsonlFile(None))[0]
    assert first.materialized() == {
        **good(ONE, "q0"),
        "_ng_task_index": 0,
        "_ng_rollout_index": 0,
        "agent_ref": {"type": "responses_api_agents", "name": ONE},
    }


def test_round_robin_spreads_evenly_from_the_lowest_partition() -> None:
    spread = RoundRobin()
    spread.add("t", {2, 0, 1})
    assert "t" in spread
    assert "u" not in spread
    assert [spread.next("t") for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ValueError, match="topic u has no partitions"):
        spread.add("u", [])


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    return (json.loads(line) for line in path.read_text().splitlines())


def test_jsonl_file_with_no_path_writes_nothing(tmp_path: Path) -> None:
    sink = JsonlFile(None)
    sink.write({"a": 1})
    sink.close()
    out = JsonlFile(tmp_path / "o.jsonl")
    out.write({"a": 1})
    out.write({"b": 2})
    out.close()
    assert list(_lines(tmp_path / "o.jsonl")) == [{"a": 1}, {"b": 2}]
