"""`gymstream runs list|cancel|delete`: the runs of a deployment and their leftovers."""

from __future__ import annotations

from typing import Annotated

import typer

from gymstream.cli.common import (
    BootstrapOpt,
    PrefixOpt,
    TopicsFileOpt,
    fail,
    kafka_settings,
    layout_for,
    out,
    run,
    setup_logging,
)
from gymstream.runs.admin import RunRow, cancel_run, delete_run, list_runs

__all__ = ["age_text", "runs_app"]

runs_app = typer.Typer(
    help="The runs on the runs topic: list them, cancel one's waiting tasks, delete one's records.",
    no_args_is_help=True,
)
RunArg = Annotated[str, typer.Argument(help="The run id.", metavar="RUN_ID")]


def age_text(seconds: float) -> str:
    """An age as one short figure: 42s, 17m, 5h, 3d."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _line(row: RunRow) -> str:
    total = "?" if row.expected is None else str(row.expected)
    return (
        f"{row.run_id}  {row.state}  {row.written} written, {row.failed} failed of {total}  "
        f"age {age_text(row.age_s)}  namespace {row.namespace}"
    )


@runs_app.command("list")
def runs_list(
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
) -> None:
    """Every run: state (producing, produced, complete, cancelled), counts, age, namespace."""
    setup_logging(False)
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    rows = run(list_runs(kafka, layout), bootstrap=kafka.bootstrap)
    if not rows:
        out.print(f"no runs on {layout.runs}")
    for row in rows:
        out.print(_line(row), highlight=False, soft_wrap=True)


@runs_app.command("cancel")
def runs_cancel(
    run_id: RunArg,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
) -> None:
    """Drop an interrupted run's waiting tasks: they never run, for it or any other run.

    A run in its private namespace (collect's default) loses its task topics; a run in a shared
    or named namespace is marked cancelled and its tasks there stay its own. Resuming the run
    later (same --run-id) publishes what its output lacks again.
    """
    setup_logging(False)
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    row, dropped = run(cancel_run(kafka, layout, run_id), bootstrap=kafka.bootstrap)
    where = (
        f"dropped its {len(dropped)} task topics"
        if dropped
        else f"its tasks in namespace {row.namespace} were not deleted (shared with other runs)"
    )
    out.print(f"cancelled {run_id}: {where}", highlight=False, soft_wrap=True)


@runs_app.command("delete")
def runs_delete(
    run_id: RunArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
) -> None:
    """Delete a finished (complete or cancelled) run's records and its private task topics.

    Its output files are untouched; its results and failures age out with their topics'
    retention. Asks first unless --yes.
    """
    setup_logging(False)
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    if not yes and not typer.confirm(
        f"delete the records of run {run_id} from {layout.runs}?", default=False
    ):
        raise fail("not deleted", 1)
    records, dropped = run(delete_run(kafka, layout, run_id), bootstrap=kafka.bootstrap)
    out.print(
        f"deleted run {run_id}: {records} records, {len(dropped)} task topics",
        highlight=False,
    )
