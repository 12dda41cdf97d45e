"""`gymstream status` options: --watch with or without its SECONDS; the one-line rendering."""

from __future__ import annotations

import click
import pytest
import typer
from rich.console import Console

from gymstream.cli.main import app
from gymstream.cli.status import WATCH_DEFAULT_S, render_line, render_run
from gymstream.status.report import GroupFacts, RunFacts, TopicOffsets, build_run
from gymstream.wire.records import RunManifest, SinkProgress


def status_params(*args: str) -> dict[str, object]:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    command = group.commands["status"]
    return dict(command.make_context("status", list(args)).params)


@pytest.mark.parametrize(
    ("args", "watch", "as_json"),
    [
        ((), None, False),
        (("--watch",), WATCH_DEFAULT_S, False),
        (("--watch", "5"), 5.0, False),
        (("--watch=0.5", "--json"), 0.5, True),
        (("--watch", "--json"), WATCH_DEFAULT_S, True),
        (("--json", "--watch"), WATCH_DEFAULT_S, True),
    ],
)
def test_watch_takes_an_optional_interval(
    args: tuple[str, ...], watch: float | None, as_json: bool
) -> None:
    params = status_params(*args)
    assert (params["watch"], params["json_output"]) == (watch, as_json)


def test_a_watch_interval_below_the_minimum_is_refused() -> None:
    with pytest.raises(click.BadParameter):
        status_params("--watch", "0")


def run_status() -> RunFacts:
    offsets = TopicOffsets(start={0: 0}, end={0: 7})
    return RunFacts(
        manifest=RunManifest(run_id="r1", state="produced", expected={"a": 10}),
        sink=SinkProgress(run_id="r1", written={"a": 6}, failed={"a": 1}),
        positions=[],
        sink_group=GroupFacts(group_id="p-sink-r1"),
        worker_groups={
            "a": GroupFacts(
                group_id="p-worker-a",
                members=[("m", "w1", "/10.0.0.1")],
                committed={("p.tasks.a", 0): 5},
            )
        },
        task_offsets={"a": offsets},
        task_topics={"a": "p.tasks.a"},
        results_topic="p.results",
        failures_topic="p.failures",
        results=TopicOffsets(start={}, end={}),
        failures=TopicOffsets(start={}, end={}),
    )


def test_a_run_in_one_line_and_as_a_table() -> None:
    status = build_run(run_status())
    line = render_line(status)
    assert (
        "run r1 produced: written 6, failed 1 of 10, in flight 3, task lag 2, 1 worker(s)" in line
    )
    assert line.endswith("complete no")
    console = Console(width=120, record=True)
    console.print(render_run(status))
    text = console.export_text()
    assert "run r1: produced, 6 written, 1 failed of 10" in text
    assert "1 on /10.0.0.1" in text
