"""`gymstream produce`: publish a dataset's rows to the task topics; resume with --output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from gymstream.cli import exit_codes
from gymstream.cli.common import (
    BootstrapOpt,
    ConfigOpt,
    PrefixOpt,
    TopicsFileOpt,
    VerboseOpt,
    console,
    fail,
    gym_config,
    kafka_settings,
    layout_for,
    out,
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
from gymstream.cli.progress import Figures, NoProgressOpt, show_progress
from gymstream.cli.scope import NamespaceOpt, scoped_layout
from gymstream.collect import resume_options, skip_waiting
from gymstream.errors import GymstreamError, RowError
from gymstream.nemo_gym.outputs.files import OutputPaths
from gymstream.produce.preflight import preflight
from gymstream.produce.producer import ProduceReport, produce_paced

__all__ = ["print_produce_summary", "print_reject", "produce_command", "produce_figures"]

AheadOpt = Annotated[
    int | None,
    typer.Option(
        "--max-groups-ahead",
        min=1,
        help="Pacing: publish at most N groups ahead of the trainer stream (its "
        "committed progress); default: no pacing.",
    ),
]
PaceConsumerOpt = Annotated[
    str, typer.Option("--pace-consumer", help="The trainer stream (--consumer) to pace against.")
]


def print_reject(item: RowError) -> None:
    """One ``rejected <file>:<line>: ...`` line on stderr for a bad row."""
    line = Text.assemble(("rejected", "yellow"), " ", str(item))  # user text: never markup
    console.print(line, highlight=False, soft_wrap=True)


def print_produce_summary(report: ProduceReport) -> None:
    """Per agent: published and skipped; then rows read, published, rejected and time taken."""
    table = Table(title=f"run {report.run_id}: produced")
    table.add_column("agent")
    table.add_column("published", justify="right")
    table.add_column("skipped (already done)", justify="right")
    for agent in sorted(report.expected):
        table.add_row(agent, str(report.published[agent]), str(report.skipped[agent]))
    out.print(table)
    published = sum(report.published.values())
    rate = published / report.elapsed_s if report.elapsed_s > 0 else 0.0
    out.print(
        f"{report.rows} rows read, {published} rollouts published, "
        f"{report.rejected} rows rejected, in {report.elapsed_s:.1f} s ({rate:.0f} rollouts/s)"
    )


def produce_figures(report: ProduceReport) -> Figures:
    """Produce's progress: rollouts sent (no total: the input is streamed, not counted first),
    rows read and rejected so far (reading and validating moves it too)."""
    return Figures(
        done=sum(report.published.values()),
        failed=report.rejected,
        failed_word="rejected",
        unit="rollouts sent",
        note=f"{report.rows} rows read, {sum(report.skipped.values())} skipped (done before)",
    )


def produce_command(
    input_arg: Annotated[
        Path | None,
        typer.Argument(help="NeMo Gym JSONL dataset (or --input).", metavar="INPUT"),
    ] = None,
    input_opt: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            "--input-jsonl-fpath",
            help="NeMo Gym JSONL dataset, as INPUT (NeMo Gym: input_jsonl_fpath).",
        ),
    ] = None,
    agent_name: AgentNameOpt = None,
    agent_map: AgentMapOpt = None,
    override_agents: OverrideAgentsOpt = False,
    num_repeats: NumRepeatsOpt = None,
    num_repeats_per_agent: PerAgentOpt = None,
    limit: LimitOpt = None,
    responses_create_params: ParamsOpt = None,
    run_id: RunIdOpt = None,
    fail_fast: FailFastOpt = False,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Where bad rows are recorded (default: "
            "<input stem>_rejects.jsonl in the current directory).",
        ),
    ] = None,
    rollout_seed: SeedOpt = None,
    num_repeats_add_seed: AddSeedOpt = False,
    max_groups_ahead: AheadOpt = None,
    pace_consumer: PaceConsumerOpt = "trainer",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Resume: publish only what this output of the same "
            "--run-id lacks (non-terminal failures get their next attempt; NeMo Gym: "
            "output_jsonl_fpath with resume_from_cache).",
        ),
    ] = None,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    namespace: NamespaceOpt = None,
    topics_file: TopicsFileOpt = None,
    config: ConfigOpt = None,
    no_progress: NoProgressOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Publish a dataset's rows to the per-agent task topics (acks=all, idempotent)."""
    setup_logging(verbose)
    input_path = input_arg or input_opt
    if input_path is None or (input_arg is not None and input_opt is not None):
        raise fail("give the dataset once: as INPUT or as --input")
    check_input(input_path)
    kafka = kafka_settings(bootstrap)
    layout = scoped_layout(layout_for(topic_prefix, topics_file), namespace)
    cfg = gym_config(config)
    options = produce_options(
        input_path,
        cfg,
        run_id=run_id,
        agent_name=agent_name,
        repeats=repeats_value(num_repeats, num_repeats_per_agent),
        limit=limit,
        params=responses_create_params,
        fail_fast=fail_fast,
        rejects_path=rejects or Path(f"{input_path.stem}_rejects.jsonl"),
        rollout_seed=rollout_seed,
        agent_map=agent_map_value(agent_map, agent_name, override_agents),
        num_repeats_add_seed=num_repeats_add_seed,
    )
    options = run(preflight(kafka, layout, options, cfg), bootstrap=kafka.bootstrap)
    if output is not None:
        if run_id is None:
            raise fail("--output resumes a run: give its --run-id too")
        try:
            resumed, options = resume_options(OutputPaths(output), options, overwrite=False)
        except GymstreamError as exc:
            raise fail(str(exc)) from None
        if resumed:  # what still waits in the task topics is not published again
            options = run(skip_waiting(kafka, layout, options), bootstrap=kafka.bootstrap)
    live = ProduceReport(run_id=options.run_id)
    with show_progress(
        f"produce {options.run_id}", lambda: produce_figures(live), enabled=not no_progress
    ):
        report = run(
            produce_paced(
                kafka,
                layout,
                options,
                max_groups_ahead=max_groups_ahead,
                pace_consumer=pace_consumer,
                on_reject=print_reject,
                report=live,
            ),
            bootstrap=kafka.bootstrap,
        )
    print_produce_summary(report)
    if report.stopped_at is not None:
        raise fail(f"stopped at the first bad row (--fail-fast): {report.stopped_at}")
    if not report.published and not report.skipped:
        why = (
            f"all {report.rejected} rows were rejected (see {options.rejects_path})"
            if report.rejected
            else "the file holds no rows"
        )
        raise fail(f"{input_path}: no rows to publish: {why}", 1)
    if report.rejected:
        problem = partial_problem(report.rejected, 0, options.rejects_path, None)
        raise fail(problem, exit_codes.PARTIAL)
