"""What the commands print and how they exit: summaries, rejects, a collect run's outcome."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
import typer

from gymstream.cli.collect import finish, problem
from gymstream.cli.demo import _demo_input, show_rows
from gymstream.cli.produce import print_produce_summary, print_reject
from gymstream.cli.sink import print_sink_summary
from gymstream.collect import CollectReport
from gymstream.errors import RowError
from gymstream.produce.producer import ProduceReport
from gymstream.sink.loop import SinkReport

WEATHER = "example_single_tool_call_simple_agent"
SYNONYMS = "example_multi_step_simple_agent"


def complete_sink() -> SinkReport:
    return SinkReport("r1", expected={WEATHER: 2}, accounted=2, outputs=2, complete=True)


def test_produce_summary_per_agent_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    report = ProduceReport(
        "r1",
        published=Counter({WEATHER: 4}),
        skipped=Counter({SYNONYMS: 2}),
        rejected=1,
        rows=4,
        elapsed_s=1.25,
    )
    print_produce_summary(report)
    printed = capsys.readouterr().out
    assert "run r1: produced" in printed
    weather = next(line for line in printed.splitlines() if WEATHER in line)
    assert [cell.strip() for cell in weather.split("│")[1:4]] == [WEATHER, "4", "0"]
    synonyms = next(line for line in printed.splitlines() if SYNONYMS in line)
    assert [cell.strip() for cell in synonyms.split("│")[1:4]] == [SYNONYMS, "0", "2"]
    assert "4 rows read, 4 rollouts published, 1 rows rejected, in 1.2 s" in printed


def test_sink_summary_means_failures_and_accounting(capsys: pytest.CaptureFixture[str]) -> None:
    report = SinkReport(
        "r1",
        written=Counter({WEATHER: 2}),
        failed=Counter({SYNONYMS: 1}),
        failure_classes=Counter({"model_timeout": 1}),
        reward_sum={WEATHER: 1.5},
        duplicates=1,
        resumed_rows=1,
        accounted=3,
        expected={WEATHER: 2, SYNONYMS: 1},
        elapsed_s=0.5,
    )
    print_sink_summary(report, Path("out.jsonl"))
    printed = capsys.readouterr().out
    assert "run r1 -> out.jsonl" in printed
    weather = next(line for line in printed.splitlines() if WEATHER in line)
    assert [cell.strip() for cell in weather.split("│")[1:5]] == [WEATHER, "2", "0.750", "0"]
    synonyms = next(line for line in printed.splitlines() if SYNONYMS in line)
    assert [cell.strip() for cell in synonyms.split("│")[1:5]] == [SYNONYMS, "0", "-", "1"]
    assert (
        "3 of 3 rollouts accounted for (1 from before a restart), 1 duplicates dropped, "
        "in 0.5 s; failures: model_timeout: 1"
    ) in printed


def test_sink_summary_without_a_manifest_says_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    print_sink_summary(SinkReport("r2"), Path("o.jsonl"))
    printed = capsys.readouterr().out
    assert "0 of ? rollouts accounted for" in printed
    assert "failures:" not in printed


def test_a_reject_is_printed_as_text_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    print_reject(RowError(Path("in.jsonl"), 3, "agent_ref", "got [bold]x[/bold]"))
    err = capsys.readouterr().err
    assert "rejected in.jsonl:3: agent_ref: got [bold]x[/bold]" in err


def test_a_complete_collect_has_no_problem() -> None:
    produced = ProduceReport("r1", published=Counter({WEATHER: 2}))
    report = CollectReport(produced=produced, sink=complete_sink())
    assert problem(report) is None
    finish(report)  # no exit


def test_a_fail_fast_stop_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    bad = RowError(Path("in.jsonl"), 2, "<line>", "not valid JSON")
    report = CollectReport(produced=ProduceReport("r1", stopped_at=bad), sink=complete_sink())
    assert problem(report) == (
        "stopped at the first bad row (--fail-fast): in.jsonl:2: <line>: not valid JSON",
        2,
    )
    with pytest.raises(typer.Exit) as info:
        finish(report)
    assert info.value.exit_code == 2
    assert "error: stopped at the first bad row" in capsys.readouterr().err


def test_a_run_where_every_rollout_failed_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    sink = SinkReport("r1", expected={WEATHER: 3}, accounted=3, outputs=0, complete=True)
    sink.failure_classes["model_connection_error"] = 3
    report = CollectReport(produced=ProduceReport("r1", published=Counter({WEATHER: 3})), sink=sink)
    assert problem(report, Path("out_failures.jsonl")) == (
        "every rollout of run r1 failed (3: 3 model_connection_error); see out_failures.jsonl",
        1,
    )
    with pytest.raises(typer.Exit) as info:
        finish(report)
    assert info.value.exit_code == 1
    assert "error: every rollout of run r1 failed" in capsys.readouterr().err
    one_success = SinkReport("r1", expected={WEATHER: 3}, accounted=3, outputs=1, complete=True)
    partly = problem(CollectReport(produced=report.produced, sink=one_success))
    assert partly == ("completed with problems: 2 rollouts failed", 3)  # not 1: one succeeded


def test_a_collect_where_every_row_was_rejected_exits_1() -> None:
    report = CollectReport(produced=ProduceReport("r1", rejected=4), sink=complete_sink())
    assert problem(report) == ("nothing was collected: all 4 rows were rejected", 1)


def test_missing_rollouts_exit_1() -> None:
    sink = SinkReport("r1", expected={WEATHER: 5}, accounted=3)
    assert problem(CollectReport(sink=sink)) == ("2 rollouts missing from the output", 1)
    # no sink report at all (it never started): not complete either
    found = problem(CollectReport())
    assert found is not None
    assert found[1] == 1
    with pytest.raises(typer.Exit) as info:
        finish(CollectReport(sink=sink))
    assert info.value.exit_code == 1


def test_demo_input_tags_each_example_row_with_its_agent(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "input.jsonl"
    n = _demo_input(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert n == len(rows) > 0
    agents = Counter(row["agent_ref"]["name"] for row in rows)
    assert set(agents) == {WEATHER, SYNONYMS}
    assert all(row["agent_ref"]["type"] == "responses_api_agents" for row in rows)
    assert all("responses_create_params" in row for row in rows)


def test_show_rows_lists_rows_sorted_by_agent_task_rollout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def row(agent: str, task: int, rollout: int, reward: float) -> str:
        return json.dumps(
            {
                "agent_ref": {"name": agent},
                "_ng_task_index": task,
                "_ng_rollout_index": rollout,
                "reward": reward,
                "response": {"output": [{}, {}]},
            }
        )

    path = tmp_path / "out.jsonl"
    path.write_text(
        "\n".join([row(WEATHER, 1, 0, 1.0), row(SYNONYMS, 0, 1, 0.0), row(WEATHER, 0, 0, 0.5)])
        + "\n\n"
    )
    show_rows(path)
    lines = [line for line in capsys.readouterr().out.splitlines() if "_agent" in line]
    cells = [[cell.strip() for cell in line.split("│")[1:6]] for line in lines]
    assert cells == [
        [SYNONYMS, "0", "1", "0.0", "2"],
        [WEATHER, "0", "0", "0.5", "2"],
        [WEATHER, "1", "0", "1.0", "2"],
    ]


def test_sink_summary_adds_throughput_tokens_and_latency_percentiles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = SinkReport(
        "r1", written=Counter({WEATHER: 100}), accounted=110, resumed_rows=10, elapsed_s=4.0
    )
    report.tokens.update({"input_tokens": 12_000, "output_tokens": 3_400})
    for i in range(1, 101):  # 10 ms .. 1 s; model time half of it, no tool time
        report.timings.add({"total_s": i / 100, "model_s": i / 200, "tools_s": 0.0})
    print_sink_summary(report, Path("out.jsonl"))
    printed = capsys.readouterr().out
    assert "throughput: 25.0 rollouts/s (100 in 4.0 s); tokens: 12,000 in, 3,400 out" in printed
    assert "latency over 100 rollouts" in printed
    rollout = next(line for line in printed.splitlines() if "│ rollout" in line)
    cells = [cell.strip() for cell in rollout.split("│")[1:-1]]
    # p50 505 ms, p90 901 ms, p99 990 ms (NeMo Gym's interpolation), within the 2% buckets
    assert cells[0] == "rollout"
    assert [float(c.removesuffix(" ms")) for c in cells[1:4]] == pytest.approx(
        [505.0, 901.0, 990.1], rel=0.02
    )
    assert cells[4:] == ["1.00 s", "50.50 s"]
    names = [line.split("│")[1].strip() for line in printed.splitlines() if line.startswith("│")]
    assert names[-3:] == ["rollout", "model", "tools"]


def test_rejected_rows_or_failed_rollouts_exit_3_with_the_counts() -> None:
    sink = SinkReport("r1", expected={WEATHER: 4}, accounted=4, outputs=3, complete=True)
    produced = ProduceReport("r1", published=Counter({WEATHER: 4}), rejected=2)
    found = problem(CollectReport(produced=produced, sink=sink), Path("f.jsonl"), Path("r.jsonl"))
    assert found == (
        "completed with problems: 2 rows rejected (see r.jsonl), 1 rollouts failed (see f.jsonl)",
        3,
    )
    clean = SinkReport("r1", expected={WEATHER: 4}, accounted=4, outputs=4, complete=True)
    only_failed = CollectReport(produced=ProduceReport("r1", published=Counter({WEATHER: 4})))
    assert problem(dataclasses.replace(only_failed, sink=sink)) == (
        "completed with problems: 1 rollouts failed",
        3,
    )
    assert problem(dataclasses.replace(only_failed, sink=clean)) is None
