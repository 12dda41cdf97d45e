"""Live progress, its figures per command, JSON logs and the resume line, without a broker."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections import Counter

import pytest
import typer
from rich.console import Console

from gymstream.cli import logs, progress
from gymstream.cli.collect import collect_figures
from gymstream.cli.configure import display_settings
from gymstream.cli.interrupt import resume_command
from gymstream.cli.produce import produce_figures
from gymstream.cli.progress import Figures, Rates, progress_line, show_progress
from gymstream.cli.sink import sink_figures
from gymstream.cli.worker import worker_figures
from gymstream.produce.producer import ProduceReport
from gymstream.sink.ledger import SinkReport
from gymstream.worker.loop import WorkerStats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- the line ------------------------------------------------------------------------------
def test_a_line_with_every_figure() -> None:
    figures = Figures(done=30, total=120, failed=2, in_flight=16, queued=40, note="mean reward 1")
    assert progress_line("collect r1", figures, 10.0) == (
        "collect r1: 30/120 rollouts (25%), 10.0/s, ETA 0:09, 2 failed, 16 in flight, "
        "40 queued; mean reward 1"
    )


def test_a_line_without_a_total_has_no_eta() -> None:
    figures = Figures(done=7, failed=1, failed_word="rejected", unit="rollouts sent")
    assert (
        progress_line("produce r", figures, 0.0) == "produce r: 7 rollouts sent, 0.0/s, 1 rejected"
    )


def test_rate_and_eta_count_from_the_first_sample() -> None:
    clock = Clock()
    rates = Rates(clock)
    assert rates.rate(50) == 0.0
    clock.now += 4
    assert rates.rate(70) == 5.0
    assert Rates.eta_s(Figures(done=70, total=170), 5.0) == 20.0
    assert Rates.eta_s(Figures(done=70), 5.0) is None
    assert Rates.eta_s(Figures(done=70, total=170), 0.0) is None


def test_long_etas_have_hours() -> None:
    line = progress_line("x", Figures(done=0, total=36_000), 1.0)
    assert "ETA 10:00:00" in line


# --- the figures of each command ------------------------------------------------------------
def test_sink_figures_leave_a_resumes_rows_out_of_the_rate() -> None:
    assert sink_figures(None).done == 0
    report = SinkReport(
        "r1",
        written=Counter({"a_simple_agent": 4}),
        failed=Counter({"a_simple_agent": 1}),
        reward_sum={"a_simple_agent": 2.0},
        resumed_rows=3,
        accounted=5,
        expected={"a_simple_agent": 10},
    )
    figures = sink_figures(report)
    assert (figures.done, figures.total, figures.failed, figures.before) == (5, 10, 1, 3)
    assert figures.note == "mean reward  a: 0.50"


def test_collect_figures_while_producing_and_after() -> None:
    produced = ProduceReport("r1", published=Counter({"a": 8}), skipped=Counter({"a": 2}), rows=5)
    early = collect_figures(produced, None)
    assert (early.done, early.total, early.queued) == (0, None, 8)
    sink = SinkReport("r1", written=Counter({"a": 3}), accounted=5, resumed_rows=2)
    producing = collect_figures(produced, sink)
    # no manifest yet: the total so far is what was sent and skipped
    assert (producing.done, producing.total, producing.queued) == (5, 10, 5)
    assert producing.note.startswith("producing: 5 rows read")
    sink.expected = {"a": 10}
    assert collect_figures(produced, sink).note == "mean reward  a: 0.00"


def test_worker_figures_in_flight_is_taken_minus_done() -> None:
    stats = WorkerStats(taken=10, succeeded=4, failures=Counter({"model_timeout": 2}))
    stats.reward_sum = 3.0
    figures = worker_figures(stats)
    assert (figures.done, figures.failed, figures.in_flight, figures.total) == (6, 2, 4, None)
    assert figures.note == "mean reward 0.75"


def test_produce_figures_count_rows_read_before_anything_is_sent() -> None:
    report = ProduceReport("r1", rows=1200, rejected=3)
    figures = produce_figures(report)
    assert (figures.done, figures.failed) == (0, 3)
    assert figures.note.startswith("1200 rows read")


# --- the two displays -----------------------------------------------------------------------
def test_not_a_terminal_logs_periodic_lines_and_a_last_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GYMSTREAM_PROGRESS_INTERVAL_S", "0.01")
    monkeypatch.setattr(progress, "console", Console(file=io.StringIO(), force_terminal=False))
    sampled = threading.Event()
    calls = []

    def figures() -> Figures:
        calls.append(1)
        if len(calls) >= 3:
            sampled.set()
        return Figures(done=len(calls), total=100)

    caplog.set_level(logging.INFO, logger=logs.PROGRESS_LOGGER)
    with show_progress("job", figures):
        assert sampled.wait(30), "the periodic line never came"
    lines = [r for r in caplog.records if r.name == logs.PROGRESS_LOGGER]
    assert len(lines) >= 3
    last = lines[-1]
    assert last.getMessage().startswith(f"job: {len(calls)}/100 rollouts")
    assert (last.__dict__["done"], last.__dict__["total"], last.__dict__["command"]) == (
        len(calls),
        100,
        "job",
    )


def test_disabled_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=logs.PROGRESS_LOGGER)
    with show_progress("job", lambda: Figures(done=1), enabled=False):
        pass
    assert not [r for r in caplog.records if r.name == logs.PROGRESS_LOGGER]


def test_a_terminal_gets_a_live_line(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=150)
    monkeypatch.setattr(progress, "console", terminal)
    with show_progress("collect r1", lambda: Figures(done=3, total=10, failed=1)):
        pass
    text = screen.getvalue()
    assert "collect r1: 3/10 rollouts (30%)" in text
    assert "1 failed" in text


def test_a_figures_function_that_races_the_loop_keeps_the_last_figures(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "console", Console(file=io.StringIO(), force_terminal=False))
    caplog.set_level(logging.INFO, logger=logs.PROGRESS_LOGGER)

    def racing() -> Figures:
        raise RuntimeError("dictionary changed size during iteration")

    with show_progress("job", racing):
        pass
    assert caplog.records[-1].getMessage().startswith("job: 0 rollouts")


# --- JSON logs ------------------------------------------------------------------------------
def test_json_lines_have_time_level_logger_message_and_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("gymstream.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("rows %d", 3, extra={"run_id": "r1", "path": object()})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["level"], first["logger"], first["message"], first["run_id"]) == (
        "WARNING",
        "gymstream.test.json",
        "rows 3",
        "r1",
    )
    assert first["time"].endswith("+00:00")
    assert first["path"].startswith("<object object")  # not JSON: as text
    assert "exception" not in first
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exception"]


def test_the_log_format_from_the_environment_and_the_option_over_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GYMSTREAM_LOG_FORMAT", "json")
    monkeypatch.setattr(logs, "_chosen", None)
    assert display_settings().log_format == "json"
    logs.choose_format("text")
    assert display_settings().log_format == "text"
    monkeypatch.setenv("GYMSTREAM_LOG_FORMAT", "xml")
    logs.choose_format(None)
    with pytest.raises(typer.Exit) as exited:
        display_settings()
    assert exited.value.exit_code == 2


# --- the resume line ------------------------------------------------------------------------
def test_the_resume_command_keeps_the_options_and_adds_a_made_up_run_id() -> None:
    argv = ["collect", "--input", "my data.jsonl", "-o", "out.jsonl"]
    assert resume_command(argv, "r-42") == (
        "gymstream collect --input 'my data.jsonl' -o out.jsonl --run-id r-42"
    )
    given = ["collect", "--input", "d.jsonl", "--run-id=mine"]
    assert resume_command(given, "mine") == "gymstream collect --input d.jsonl --run-id=mine"


def test_a_failing_command_logs_no_last_progress_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A configuration mistake is one line: the error, not a progress line as well."""
    monkeypatch.setattr(progress, "console", Console(file=io.StringIO(), force_terminal=False))
    caplog.set_level(logging.INFO, logger=logs.PROGRESS_LOGGER)
    with pytest.raises(typer.Exit), show_progress("job", lambda: Figures(done=1)):
        raise typer.Exit(2)
    assert not [r for r in caplog.records if r.name == logs.PROGRESS_LOGGER]
