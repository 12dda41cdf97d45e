"""`gymstream collect`: NeMo Gym's collector over Kafka, with a progress bar and summaries.

``run_collect`` (shared with `gymstream demo`) runs ``gymstream.collect.collect`` and prints
the summaries; ``problem`` decides the exit: a --fail-fast stop or missing rollouts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gymstream.cli.common import (
    BootstrapOpt,
    ConfigOpt,
    ModelApiOpt,
    ModelBaseUrlOpt,
    ModelNameOpt,
    ModelTokenIdsOpt,
    NemoGymHeadOpt,
    OverwriteOpt,
    PrefixOpt,
    TopicsFileOpt,
    VerboseOpt,
    console,
    fail,
    gym_config,
    kafka_settings,
    layout_for,
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
from gymstream.cli.produce import print_produce_summary, print_reject
from gymstream.cli.sink import all_failed_problem, print_sink_summary
from gymstream.collect import CollectReport, collect
from gymstream.config import GymConfig
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo.outputs import OutputPaths
from gymstream.produce.producer import ProduceOptions
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.sink.loop import SinkReport

__all__ = ["collect_command", "finish", "problem", "progress_bar", "run_collect"]


class _Progress:
    """done / total, rate, running mean reward per agent."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("collecting", total=None)
        self.started = time.perf_counter()

    def __call__(self, report: SinkReport) -> None:
        means = "  ".join(
            f"{agent.removesuffix('_simple_agent')}: {report.reward_sum[agent] / n:.2f}"
            for agent, n in sorted(report.written.items())
            if n
        )
        rate = report.accounted / max(1e-9, time.perf_counter() - self.started)
        self.progress.update(
            self.task,
            completed=report.accounted,
            total=report.expected_total,
            description=f"{rate:7.1f}/s  mean reward  {means}",
        )


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[_Progress | None]:
    """A live bar on stderr fed by the sink's progress (None when disabled)."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        yield _Progress(progress)


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
) -> CollectReport:
    """Run ``gymstream.collect.collect`` with a progress bar, then print both summaries."""
    with progress_bar(show_progress) as bar:
        report = run(
            collect(
                kafka,
                layout,
                cfg,
                options,
                paths,
                settings=settings or rollout_settings(),
                model_overrides=model_overrides,
                concurrency=concurrency,
                overwrite=overwrite,
                worker_processes=worker_processes,
                on_progress=bar,
                on_reject=print_reject,
            ),
            bootstrap=kafka.bootstrap,
        )
    if report.produced is not None:
        print_produce_summary(report.produced)
    if report.sink is not None:
        print_sink_summary(report.sink, paths.output)
    return report


def collect_command(
    input_path: Annotated[
        Path,
        typer.Option("--input", "-i", "--input-jsonl-fpath", help="NeMo Gym JSONL dataset."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", "--output-jsonl-fpath", help="Output JSONL (NeMo Gym rows)."
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
        typer.Option("--concurrency", min=1, help="Rollouts in flight per agent."),
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
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
    config: ConfigOpt = None,
    nemo_gym_head: NemoGymHeadOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Collect rollouts end to end: apply topics, produce, run workers and the sink.

    The counterpart of NeMo Gym's `ng_collect_rollouts`. Exits non-zero when any rollout is
    missing. Run it again with the same --run-id to resume: only what the output lacks is redone.
    """
    setup_logging(verbose)
    check_input(input_path)
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
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
    report = run_collect(
        kafka,
        layout,
        cfg,
        options,
        paths,
        model_overrides={
            "base_url": model_base_url,
            "name": model_name,
            "api": model_api,
            "return_token_id_information": model_return_token_ids,
        },
        concurrency=concurrency,
        overwrite=overwrite,
        show_progress=not no_progress,
        worker_processes=worker_processes,
    )
    finish(report, paths)


def problem(report: CollectReport, failures: Path | None = None) -> tuple[str, int] | None:
    """What went wrong in a collect run, as (message, exit code), or None when complete."""
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
    return None


def finish(report: CollectReport, paths: OutputPaths | None = None) -> None:
    """Exit non-zero with one line when the run is not complete (see ``problem``)."""
    found = problem(report, None if paths is None else paths.failures)
    if found is not None:
        raise fail(*found)
