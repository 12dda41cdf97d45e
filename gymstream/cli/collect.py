"""`gymstream collect`: NeMo Gym's collector over Kafka, with live progress and summaries.

``run_collect`` (shared with `gymstream demo`) runs ``gymstream.collect.collect`` and prints
the summaries; ``problem`` decides the exit: a --fail-fast stop or missing rollouts.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from gymstream.cli import exit_codes, progress
from gymstream.cli.common import (
    BootstrapOpt,
    ConfigOpt,
    MetricsPortOpt,
    ModelApiOpt,
    ModelBaseUrlOpt,
    ModelNameOpt,
    ModelTokenIdsOpt,
    NemoGymHeadOpt,
    OverwriteOpt,
    PrefixOpt,
    TopicsFileOpt,
    VerboseOpt,
    fail,
    gym_config,
    kafka_settings,
    layout_for,
    metrics_settings,
    rollout_settings,
    run,
    setup_logging,
)
from gymstream.cli.dataset import (
    AddSeedOpt,
    AgentMapOpt,
    AgentNameOpt,
    FailFastOpt,
    LimitOpt,
    NumRepeatsOpt,
    OverrideAgentsOpt,
    ParamsOpt,
    PerAgentOpt,
    RunIdOpt,
    SeedOpt,
    agent_map_value,
    check_input,
    produce_options,
    repeats_value,
)
from gymstream.cli.exit_codes import partial_problem
from gymstream.cli.interrupt import Interrupt, resume_command
from gymstream.cli.produce import print_produce_summary, print_reject
from gymstream.cli.scope import PrivateNamespaceOpt, release_scope, scoped_layout
from gymstream.cli.sink import all_failed_problem, print_sink_summary, reward_note
from gymstream.collect import CollectReport, collect
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.outputs.files import OutputPaths
from gymstream.produce.preflight import preflight
from gymstream.produce.producer import ProduceOptions, ProduceReport
from gymstream.settings import KafkaSettings, MetricsSettings, RolloutSettings
from gymstream.sink.loop import SinkReport
from gymstream.worker.loop import WorkerStats
from gymstream.worker.outage import with_outage

__all__ = ["collect_command", "collect_figures", "finish", "problem", "run_collect"]


def collect_figures(
    produced: ProduceReport,
    sink: SinkReport | None,
    workers: Mapping[str, WorkerStats] | None = None,
) -> progress.Figures:
    """A collect run's progress: rollouts accounted for, of those expected (of those sent so
    far while producing); queued: sent, not yet in the output (waiting or in flight); a model
    outage of an in-process worker first, while it lasts."""
    figures = _collect_figures(produced, sink)
    outages = [w.outage for w in (workers or {}).values()]
    return dataclasses.replace(figures, note=with_outage(outages, figures.note))


def _collect_figures(produced: ProduceReport, sink: SinkReport | None) -> progress.Figures:
    sent = sum(produced.published.values())
    if sink is None:
        return progress.Figures(done=0, queued=sent, note=f"{produced.rows} rows read")
    total = sink.expected_total
    new = sink.accounted - sink.resumed_rows
    note = reward_note(sink)
    if total is None:
        total = sent + sum(produced.skipped.values())
        note = f"producing: {produced.rows} rows read" + (f"; {note}" if note else "")
    return progress.Figures(
        done=sink.accounted,
        total=total,
        failed=sum(sink.failed.values()),
        queued=max(0, sent - new),
        before=sink.resumed_rows,
        note=note,
    )


def run_collect(
    kafka: KafkaSettings,
    layout: TopicLayout,
    cfg: GymConfig,
    options: ProduceOptions,
    paths: OutputPaths,
    *,
    model_overrides: dict[str, Any],
    concurrency: int | None,
    settings: RolloutSettings | None = None,
    overwrite: bool,
    show_progress: bool = True,
    worker_processes: int = 0,
    metrics: MetricsSettings | None = None,
    interrupt: Interrupt | None = None,
) -> CollectReport:
    """Run ``gymstream.collect.collect`` with live progress, then print both summaries.

    SIGTERM/SIGINT stop it gracefully (``interrupt``; ``report.interrupted`` says it happened).
    """
    settings = settings or rollout_settings()
    interrupt = interrupt or Interrupt(settings.worker.shutdown_grace_s)
    produced = ProduceReport(run_id=options.run_id)
    latest: list[SinkReport] = []
    workers: dict[str, WorkerStats] = {}

    def keep(report: SinkReport) -> None:
        latest[:] = [report]

    def figures() -> progress.Figures:
        return collect_figures(produced, latest[0] if latest else None, workers)

    async def main() -> CollectReport:
        interrupt.install()
        return await collect(
            kafka,
            layout,
            cfg,
            options,
            paths,
            settings=settings,
            model_overrides=model_overrides,
            concurrency=concurrency,
            overwrite=overwrite,
            worker_processes=worker_processes,
            on_progress=keep,
            on_reject=print_reject,
            stop=interrupt.stop,
            produce_report=produced,
            metrics=metrics,
            worker_stats=workers,
        )

    with progress.show_progress(f"collect {options.run_id}", figures, enabled=show_progress):
        report = run(main(), bootstrap=kafka.bootstrap)
    if report.produced is not None:
        print_produce_summary(report.produced)
    if report.sink is not None:
        print_sink_summary(report.sink, paths.output)
    if not report.interrupted and report.missing == 0:
        release_scope(kafka, layout, options.run_id)  # nothing waits: docs/scopes.md
    return report


def collect_command(
    input_path: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            "--input-jsonl-fpath",
            help="NeMo Gym JSONL dataset (NeMo Gym: input_jsonl_fpath).",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            "--output-jsonl-fpath",
            help="Output JSONL of NeMo Gym rows (NeMo Gym: output_jsonl_fpath).",
        ),
    ],
    agent_name: AgentNameOpt = None,
    agent_map: AgentMapOpt = None,
    override_agents: OverrideAgentsOpt = False,
    num_repeats: NumRepeatsOpt = None,
    num_repeats_per_agent: PerAgentOpt = None,
    limit: LimitOpt = None,
    responses_create_params: ParamsOpt = None,
    run_id: RunIdOpt = None,
    rollout_seed: SeedOpt = None,
    num_repeats_add_seed: AddSeedOpt = False,
    fail_fast: FailFastOpt = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            help="Rollouts in flight per agent (NeMo Gym: num_samples_in_parallel).",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    model_base_url: ModelBaseUrlOpt = None,
    model_name: ModelNameOpt = None,
    model_api: ModelApiOpt = None,
    model_return_token_ids: ModelTokenIdsOpt = None,
    worker_processes: Annotated[
        int,
        typer.Option(
            "--worker-processes",
            min=0,
            help="0: workers run inside this process; N: spawn N worker processes per agent "
            "(one per core is fastest for big runs).",
        ),
    ] = 0,
    no_progress: progress.NoProgressOpt = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    namespace: PrivateNamespaceOpt = None,
    topics_file: TopicsFileOpt = None,
    config: ConfigOpt = None,
    nemo_gym_head: NemoGymHeadOpt = None,
    verbose: VerboseOpt = False,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Collect rollouts end to end: apply topics, produce, run workers and the sink.

    The counterpart of NeMo Gym's `ng_collect_rollouts`. Exits non-zero when any rollout is
    missing. Run it again with the same --run-id to resume: only what the output lacks is redone.
    SIGTERM/SIGINT: stop producing, settle the rollouts in flight, write and commit what
    arrived, print the summary and exit 143/130 with the command that resumes; a second
    signal stops at once.
    """
    setup_logging(verbose)
    check_input(input_path)
    kafka = kafka_settings(bootstrap)
    metrics = metrics_settings(metrics_port)
    base_layout = layout_for(topic_prefix, topics_file)
    cfg = gym_config(config, nemo_gym_head)
    paths = OutputPaths(output)
    options = produce_options(
        input_path,
        cfg,
        run_id=run_id,
        agent_name=agent_name,
        repeats=repeats_value(num_repeats, num_repeats_per_agent),
        limit=limit,
        params=responses_create_params,
        fail_fast=fail_fast,
        rejects_path=paths.rejects,
        materialized_path=paths.materialized,
        rollout_seed=rollout_seed,
        agent_map=agent_map_value(agent_map, agent_name, override_agents),
        num_repeats_add_seed=num_repeats_add_seed,
    )
    layout = scoped_layout(base_layout, namespace, private_run=options.run_id)
    interrupt = Interrupt(rollout_settings().worker.shutdown_grace_s)
    model_overrides = {
        "base_url": model_base_url,
        "name": model_name,
        "api": model_api,
        "return_token_id_information": model_return_token_ids,
    }
    options = run(
        preflight(
            kafka,
            layout,
            options,
            cfg,
            servers=rollout_settings(),
            model_overrides=model_overrides,
            topics_applied_later=True,
        ),
        bootstrap=kafka.bootstrap,
    )
    report = run_collect(
        kafka,
        layout,
        cfg,
        options,
        paths,
        model_overrides=model_overrides,
        concurrency=concurrency,
        overwrite=overwrite,
        show_progress=not no_progress,
        worker_processes=worker_processes,
        metrics=metrics,
        interrupt=interrupt,
    )
    if report.interrupted:
        written = report.sink.accounted if report.sink is not None else 0
        resume = resume_command(sys.argv[1:], options.run_id)
        raise fail(
            f"interrupted ({interrupt.signal.name if interrupt.signal else 'stop'}): {written} "
            f"rollouts of run {options.run_id} are in the output; the rest wait for its resume "
            f"(`gymstream runs cancel {options.run_id}` drops them); resume with the same "
            f"--run-id {options.run_id}: {resume}",
            interrupt.exit_code,
        )
    finish(report, paths)


def problem(
    report: CollectReport, failures: Path | None = None, rejects: Path | None = None
) -> tuple[str, int] | None:
    """What went wrong in a collect run, as (message, exit code: ``cli/exit_codes.py``), or
    None when every row ran and every rollout succeeded."""
    if report.interrupted:
        return "interrupted before the run was complete: run it again with the same --run-id", 130
    if report.produced is not None and report.produced.stopped_at is not None:
        return f"stopped at the first bad row (--fail-fast): {report.produced.stopped_at}", 2
    if report.missing != 0:
        return f"{report.missing} rollouts missing from the output", 1
    produced = report.produced
    if produced is not None and not produced.published and not produced.skipped:
        why = f"all {produced.rejected} rows were rejected" if produced.rejected else "no rows"
        return f"nothing was collected: {why}", 1
    if report.sink is not None and report.sink.all_failed:
        return all_failed_problem(report.sink, failures or Path("the failures file")), 1
    rejected = produced.rejected if produced is not None else 0
    failed = report.sink.accounted - report.sink.outputs if report.sink is not None else 0
    if rejected or failed:
        return partial_problem(rejected, failed, rejects, failures), exit_codes.PARTIAL
    return None


def finish(report: CollectReport, paths: OutputPaths | None = None) -> None:
    """Exit non-zero with one line when the run is not complete or not clean (see ``problem``)."""
    found = problem(report) if paths is None else problem(report, paths.failures, paths.rejects)
    if found is not None:
        raise fail(*found)
