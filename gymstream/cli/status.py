"""`gymstream status`: how far each run is, per agent, with its workers, sink and trainers.

The facts come from ``status.facts.StatusProbe``, the report from ``status.report`` (its
structs are the ``--json`` document, docs/status.md). A human table by default; ``--json``
prints the document; ``--watch [SECONDS]`` refreshes until interrupted: a live table on a
terminal, otherwise a line per run (or a JSON document per line) per refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import click
import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from gymstream.cli.configure import kafka_settings, layout_for, setup_logging
from gymstream.cli.console import out
from gymstream.cli.execute import run
from gymstream.cli.options import BootstrapOpt, PrefixOpt, TopicsFileOpt, VerboseOpt
from gymstream.eventloop import install_stop_signals
from gymstream.kafka.topics import TopicLayout
from gymstream.settings import KafkaSettings
from gymstream.status.facts import StatusProbe
from gymstream.status.report import GroupStatus, RunStatus, StatusDocument, build_document
from gymstream.wire.codec import ENCODER

__all__ = ["WATCH_DEFAULT_S", "StatusCommand", "render_line", "render_run", "status_command"]

WATCH_DEFAULT_S = 2.0


class StatusCommand(TyperCommand):
    """Lets ``--watch`` go without its value (then every WATCH_DEFAULT_S seconds): typer has
    no optional-value options, click has (``_flag_needs_value``; tests/unit/cli hold it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, click.Option) and param.name == "watch":
                param._flag_needs_value = True
                param.flag_value = WATCH_DEFAULT_S


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def _workers(agent_workers: GroupStatus) -> str:
    members = agent_workers.members
    if not members:
        return "none"
    return f"{len(members)} on {', '.join(agent_workers.hosts)}"


def render_run(status: RunStatus) -> RenderableType:
    """A run as a table (an agent a row) and a line each for its sink and trainers."""
    done = "complete" if status.complete else "cancelled" if status.cancelled else status.state
    title = f"run {status.run_id}: {done}, {_n(status.written)} written, {_n(status.failed)} failed"
    table = Table(title=f"{title} of {_n(status.expected)}", title_justify="left")
    for column in ("agent", "expected", "published", "written", "failed", "in flight", "lag"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    table.add_column("workers")
    for a in status.agents:
        cells = (a.expected, a.published, a.written, a.failed, a.in_flight, a.lag)
        table.add_row(a.agent, *(_n(c) for c in cells), _workers(a.workers))
    sink = status.sink
    lines = [
        f"sink ({sink.group}): {len(sink.members)} member(s), lag {_n(sink.lag)}"
        + ("" if sink.reported else ", no counts published yet")
    ]
    lines.append(f"namespace {status.namespace}")
    lines += [f"{a.agent}: {a.model_outage}" for a in status.agents if a.model_outage]
    if status.mixed_models is not None:
        lines.append(f"warning: {status.mixed_models}")
    for t in status.trainers:
        lines.append(
            f"trainer {t.consumer}: {t.closed_units} of {_n(t.expected_units)} {t.unit}s "
            f"closed, {t.acknowledged_units} acknowledged, lag {t.lag}"
            + ("" if t.policy_version is None else f", policy version {t.policy_version}")
        )
    return Group(table, *(Text(line) for line in lines))


def render_line(status: RunStatus) -> str:
    """A run in one line (``--watch`` when stdout is not a terminal)."""
    lags = [a.lag for a in status.agents if a.lag is not None]
    workers = sum(len(a.workers.members) for a in status.agents)
    return (
        f"{time.strftime('%H:%M:%S')} run {status.run_id} {status.state}: "
        f"written {_n(status.written)}, failed {_n(status.failed)} of {_n(status.expected)}, "
        f"in flight {_n(status.in_flight)}, task lag {sum(lags) if lags else '?'}, "
        f"{workers} worker(s), complete {'yes' if status.complete else 'no'}"
        + "".join(f"; {a.agent}: {a.model_outage}" for a in status.agents if a.model_outage)
    )


def _human(document: StatusDocument) -> RenderableType:
    if not document.runs:
        return Text(f"no runs on {document.topic_prefix}.runs")
    return Group(*(render_run(r) for r in document.runs))


async def _report(
    kafka: KafkaSettings,
    layout: TopicLayout,
    run_id: str | None,
    limit: int,
    watch_s: float | None,
    show: Callable[[StatusDocument], None],
) -> None:
    stop = asyncio.Event()
    if watch_s is not None:
        install_stop_signals(stop)
    async with StatusProbe(kafka, layout) as probe:
        while True:
            facts = await probe.gather(run_id, limit)
            show(
                build_document(
                    facts, generated_ms=int(time.time() * 1000), topic_prefix=layout.prefix
                )
            )
            if watch_s is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), watch_s)
            if stop.is_set():
                return


def status_command(
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id", help="Only this run (default: the newest runs).", show_default=False
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the JSON document (docs/status.md).")
    ] = False,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch",
            help=f"Refresh every SECONDS (default {WATCH_DEFAULT_S:g}) until interrupted: a live "
            "table on a terminal, else a line per run (with --json a document per line).",
            min=0.1,
            metavar="[SECONDS]",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="How many runs at most, newest first.", min=1)
    ] = 20,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """How far each run is: per agent expected, published, written, failed, in flight and the
    worker group's lag; the workers; the sink; each trainer stream's position and lag.

    Figures nobody has published yet show as ? (null in --json). A --run-id with no manifest
    is an error (exit 2).
    """
    setup_logging(verbose)
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    live: Live | None = None

    def show(document: StatusDocument) -> None:
        if json_output:
            sys.stdout.write(ENCODER.encode(document).decode() + "\n")
            sys.stdout.flush()
        elif live is not None:
            live.update(_human(document), refresh=True)
        elif watch is not None:
            for status in document.runs:
                out.print(render_line(status), highlight=False, soft_wrap=True)
        else:
            out.print(_human(document))

    with contextlib.ExitStack() as stack:
        if watch is not None and not json_output and sys.stdout.isatty():
            live = stack.enter_context(Live(console=out, auto_refresh=False))
        run(_report(kafka, layout, run_id, limit, watch, show), bootstrap=kafka.bootstrap)
