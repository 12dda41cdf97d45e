"""`gymstream sink`: write a run's scored rollouts to NeMo Gym JSONL, and its summary."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gymstream.cli import exit_codes
from gymstream.cli.configure import (
    gym_config,
    kafka_settings,
    layout_for,
    metrics_settings,
    rollout_settings,
    setup_logging,
)
from gymstream.cli.console import fail, out
from gymstream.cli.execute import run
from gymstream.cli.exit_codes import partial_problem
from gymstream.cli.options import (
    BootstrapOpt,
    MetricsPortOpt,
    NemoGymHeadOpt,
    OverwriteOpt,
    PrefixOpt,
    TopicsFileOpt,
    VerboseOpt,
)
from gymstream.cli.progress import Figures, NoProgressOpt, show_progress
from gymstream.cli.summary import latency_table, throughput_line
from gymstream.errors import GymstreamError
from gymstream.eventloop import install_stop_signals
from gymstream.nemo_gym.outputs.files import OutputPaths, claim_output, hold_output
from gymstream.nemo_gym.servers.aggregate_metrics import write_server_metrics
from gymstream.observe.server import observed
from gymstream.sink.loop import SinkReport, run_sink

__all__ = ["print_sink_summary", "reward_note", "sink_command", "sink_figures"]


def print_sink_summary(report: SinkReport, output: Path) -> None:
    """Per agent: rollouts, mean reward, failures; then what is accounted for, and the time."""
    table = Table(title=f"run {report.run_id} -> {output}")
    table.add_column("agent")
    table.add_column("rollouts", justify="right")
    table.add_column("mean reward", justify="right")
    table.add_column("failures", justify="right")
    agents = sorted(set(report.written) | set(report.failed) | set(report.expected or {}))
    for agent in agents:
        n = report.written[agent]
        mean = f"{report.reward_sum[agent] / n:.3f}" if n else "-"
        table.add_row(agent, str(n), mean, str(report.failed[agent]))
    out.print(table)
    classes = ", ".join(f"{k}: {v}" for k, v in report.failure_classes.most_common())
    expected = report.expected_total
    out.print(
        f"{report.accounted} of {expected if expected is not None else '?'} rollouts accounted "
        f"for ({report.resumed_rows} from before a restart), {report.duplicates} duplicates "
        f"dropped, in {report.elapsed_s:.1f} s" + (f"; failures: {classes}" if classes else "")
    )
    new = report.accounted - report.resumed_rows
    out.print(throughput_line(new, report.elapsed_s, report.tokens))
    if report.mixed_models is not None:
        out.print(f"[yellow]warning:[/yellow] {report.mixed_models}", highlight=False)
    latency = latency_table(report.timings)
    if latency is not None:
        out.print(latency)


def sink_figures(report: SinkReport | None) -> Figures:
    """A sink's progress: rollouts accounted for of those expected, failures, mean rewards."""
    if report is None:
        return Figures(done=0, note="waiting for the first results")
    return Figures(
        done=report.accounted,
        total=report.expected_total,
        failed=sum(report.failed.values()),
        before=report.resumed_rows,
        note=reward_note(report),
    )


def reward_note(report: SinkReport) -> str:
    """``mean reward  agent_a: 0.50  agent_b: 1.00`` (names without ``_simple_agent``)."""
    means = "  ".join(
        f"{agent.removesuffix('_simple_agent')}: {report.reward_sum[agent] / n:.2f}"
        for agent, n in sorted(report.written.items())
        if n
    )
    return f"mean reward  {means}" if means else ""


SinkConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="The run's NeMo Gym YAML files (as for collect/worker): at the end of a complete "
        "run, each agent's server computes <stem>_aggregate_metrics.json (/aggregate_metrics), "
        "as NeMo Gym's collector does. Without it: gymstream's own summary.",
        show_default=False,
    ),
]


def sink_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL (NeMo Gym rows).")],
    run_id: Annotated[str, typer.Option("--run-id", help="The run to collect.")],
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep running after the run is complete.")
    ] = False,
    overwrite: OverwriteOpt = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
    no_progress: NoProgressOpt = False,
    verbose: VerboseOpt = False,
    metrics_port: MetricsPortOpt = None,
    config: SinkConfigOpt = None,
    nemo_gym_head: NemoGymHeadOpt = None,
) -> None:
    """Write a run's scored rollouts to JSONL exactly as NeMo Gym's collector would.

    Stops by itself when every rollout of the run is written or failed (unless --follow).
    Failures go to <stem>_failures.jsonl; metrics to <stem>_aggregate_metrics.json.
    """
    setup_logging(verbose)
    kafka = kafka_settings(bootstrap)
    metrics = metrics_settings(metrics_port)
    layout = layout_for(topic_prefix, topics_file)
    servers = gym_config(config, nemo_gym_head) if config else None
    settings = rollout_settings() if servers else None
    paths = OutputPaths(output)
    with contextlib.ExitStack() as held:
        try:
            # one writer, from before the claim; a refused claim touches no file, no lock
            held.enter_context(hold_output(paths, run_id, overwrite=overwrite))
            claim_output(paths, run_id, overwrite=overwrite)
        except GymstreamError as exc:
            raise fail(str(exc)) from None

        latest: list[SinkReport] = []

        async def main() -> SinkReport:
            stop = asyncio.Event()
            install_stop_signals(stop)
            async with observed(metrics.port, metrics.host) as observer:
                report = await run_sink(
                    kafka,
                    layout,
                    paths,
                    run_id,
                    stop=stop,
                    follow=follow,
                    metrics=observer,
                    on_progress=keep,
                )
            if servers is not None and settings is not None and report.complete:
                await write_server_metrics(
                    servers, paths, settings=settings.server, retry=settings.retry
                )
            return report

        def keep(report: SinkReport) -> None:
            latest[:] = [report]

        def figures() -> Figures:
            return sink_figures(latest[0] if latest else None)

        with show_progress(f"sink {run_id}", figures, enabled=not no_progress):
            report = run(main(), bootstrap=kafka.bootstrap)
    print_sink_summary(report, output)
    exit_as(report, paths, follow=follow)


def exit_as(report: SinkReport, paths: OutputPaths, *, follow: bool) -> None:
    """Exit with the code the sink's end deserves (``cli/exit_codes.py``); 0 returns."""
    if not report.complete and not follow:
        raise fail("stopped before the run was complete; run the same command to resume", 1)
    if report.all_failed:
        raise fail(all_failed_problem(report, paths.failures), 1)
    if report.complete and report.accounted > report.outputs:
        failed = report.accounted - report.outputs
        raise fail(partial_problem(0, failed, None, paths.failures), exit_codes.PARTIAL)


def all_failed_problem(report: SinkReport, failures: Path) -> str:
    """The one line of a complete run in which every rollout failed (shared with collect)."""
    classes = ", ".join(f"{n} {c}" for c, n in report.failure_classes.most_common(3))
    return (
        f"every rollout of run {report.run_id} failed ({report.accounted}"
        f"{': ' + classes if classes else ''}); see {failures}"
    )
