"""`gymstream topics|produce|worker|sink`: the separable stages of the pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

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
from gymstream.config import GymConfig
from gymstream.errors import GymstreamError, RowError
from gymstream.eventloop import install_stop_signals
from gymstream.kafka.topics import apply_topics
from gymstream.nemo.outputs import OutputPaths, claim_output, read_run_file
from gymstream.nemo.overrides import parse_override
from gymstream.nemo.resume import DEFAULT_MAX_ATTEMPTS, apply_plan, plan_resume
from gymstream.nemo.rollouts import parse_repeats
from gymstream.produce.producer import ProduceOptions, ProduceReport, produce_paced, republish
from gymstream.sink.loop import SinkReport, run_sink
from gymstream.worker.serve import serve_until_signalled

topics_app = typer.Typer(help="Kafka topics declared in topics.yaml.", no_args_is_help=True)


@topics_app.command("apply")
def topics_apply(
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
    config: ConfigOpt = None,
    agent: Annotated[
        list[str] | None,
        typer.Option("--agent", help="Only these agents' task topics (default: every agent)."),
    ] = None,
) -> None:
    """Create the topics that are missing and report those that differ; safe to run twice."""
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    agents = agent or list(gym_config(config).agents)
    report = run(apply_topics(kafka.client_options(), layout, agents), bootstrap=kafka.bootstrap)
    for name in report.created:
        out.print(f"created   {name}")
    for name in report.unchanged:
        out.print(f"ok        {name}")
    for line in report.differences:
        out.print(f"[yellow]differs[/yellow]   {line}")


def repeats_value(num_repeats: int | None, per_agent: list[str] | None) -> int | dict[str, int]:
    if per_agent:
        try:
            mapping = parse_repeats(per_agent)
        except ValueError as exc:
            raise fail(f"--num-repeats-per-agent: {exc}") from None
        if num_repeats is not None:
            mapping.setdefault("_default", num_repeats)
        return mapping
    return num_repeats or 1


def overrides_value(values: list[str] | None) -> dict[str, object]:
    result: dict[str, object] = {}
    for text in values or []:
        try:
            key, value = parse_override(text)
        except ValueError as exc:
            raise fail(f"--responses-create-params: {exc}") from None
        result[key] = value
    return result


NumRepeatsOpt = Annotated[
    int | None,
    typer.Option(
        "--num-repeats", min=1, help="Rollouts per input row (GRPO group size).", show_default="1"
    ),
]
PerAgentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--num-repeats-per-agent",
        metavar="AGENT=N",
        help="Repeats for one agent (repeatable; `_default=N` for the rest).",
    ),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N lines.")]
AgentNameOpt = Annotated[
    str | None,
    typer.Option("--agent-name", help="Agent for rows that have no agent_ref."),
]
ParamsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--responses-create-params",
        metavar="KEY=VALUE",
        help="Override a key of responses_create_params (repeatable), e.g. temperature=0.6.",
    ),
]
RunIdOpt = Annotated[
    str | None,
    typer.Option("--run-id", help="Run id (default: a new one). Reuse it to resume a run."),
]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first bad row.")]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--rollout-seed",
        help="Add responses_create_params.seed = BASE + rollout index (NeMo Gym's optional "
        "per-rollout seed: reproducible, different samples within a group). Only for endpoints "
        "that accept `seed` (vLLM does).",
        metavar="BASE",
    ),
]
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


def produce_options(
    input_path: Path,
    cfg: GymConfig,
    *,
    run_id: str | None,
    agent_name: str | None,
    repeats: int | dict[str, int],
    limit: int | None,
    params: list[str] | None,
    fail_fast: bool,
    rejects_path: Path,
    materialized_path: Path | None = None,
    rollout_seed: int | None = None,
) -> ProduceOptions:
    """The producer's options from the CLI's (shared by produce and collect)."""
    return ProduceOptions(
        input_path=input_path,
        run_id=run_id or new_run_id(),
        known_agents=frozenset(cfg.agents),
        default_agent=agent_name,
        num_repeats=repeats,
        limit=limit,
        overrides=overrides_value(params),
        fail_fast=fail_fast,
        rejects_path=rejects_path,
        materialized_path=materialized_path,
        rollout_seed=rollout_seed,
    )


def check_input(path: Path) -> None:
    """Refuse a missing or empty input before anything is published."""
    if not path.is_file():
        raise fail(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise fail(f"{path}: no rows to publish: the file is empty", 1)


def print_reject(item: RowError) -> None:
    line = Text.assemble(("rejected", "yellow"), " ", str(item))  # user text: never markup
    console.print(line, highlight=False, soft_wrap=True)


def print_produce_summary(report: ProduceReport) -> None:
    table = Table(title=f"run {report.run_id}: produced")
    table.add_column("agent")
    table.add_column("published", justify="right")
    table.add_column("skipped (already done)", justify="right")
    for agent in sorted(report.expected):
        table.add_row(agent, str(report.published[agent]), str(report.skipped[agent]))
    out.print(table)
    out.print(
        f"{report.rows} rows read, {sum(report.published.values())} rollouts published, "
        f"{report.rejected} rows rejected, in {report.elapsed_s:.1f} s"
    )


def produce_command(
    input_path: Annotated[Path, typer.Argument(help="NeMo Gym JSONL dataset.", metavar="INPUT")],
    agent_name: AgentNameOpt = None,
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
    max_groups_ahead: AheadOpt = None,
    pace_consumer: PaceConsumerOpt = "trainer",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Resume: publish only what this output of the same "
            "--run-id lacks (non-terminal failures get their next attempt).",
        ),
    ] = None,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Publish a dataset's rows to the per-agent task topics (acks=all, idempotent)."""
    setup_logging(verbose)
    check_input(input_path)
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
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
    )
    if output is not None:
        if run_id is None:
            raise fail("--output resumes a run: give its --run-id too")
        paths = OutputPaths(output)
        try:
            if claim_output(paths, run_id, overwrite=False):
                plan = plan_resume(paths, run_id, max_attempts=DEFAULT_MAX_ATTEMPTS)
                apply_plan(paths, plan)
                options = dataclasses.replace(
                    options, skip_rollouts=frozenset(plan.done), attempts=plan.attempts
                )
        except GymstreamError as exc:
            raise fail(str(exc)) from None
    report = run(
        produce_paced(
            kafka,
            layout,
            options,
            max_groups_ahead=max_groups_ahead,
            pace_consumer=pace_consumer,
            on_reject=print_reject,
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


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def print_sink_summary(report: SinkReport, output: Path) -> None:
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


def sink_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL (NeMo Gym rows).")],
    run_id: Annotated[str, typer.Option("--run-id", help="The run to collect.")],
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep running after the run is complete.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an output that belongs to another run.")
    ] = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Write a run's scored rollouts to JSONL exactly as NeMo Gym's collector would.

    Stops by itself when every rollout of the run is written or failed (unless --follow).
    Failures go to <stem>_failures.jsonl; metrics to <stem>_aggregate_metrics.json.
    """
    setup_logging(verbose)
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    paths = OutputPaths(output)
    try:
        claim_output(paths, run_id, overwrite=overwrite)
    except GymstreamError as exc:
        raise fail(str(exc)) from None

    async def main() -> SinkReport:
        stop = asyncio.Event()
        install_stop_signals(stop)
        return await run_sink(kafka, layout, paths, run_id, stop=stop, follow=follow)

    report = run(main(), bootstrap=kafka.bootstrap)
    print_sink_summary(report, output)
    if not report.complete and not follow:
        raise fail("stopped before the run was complete; run the same command to resume", 1)


def worker_command(
    agent: Annotated[str, typer.Option("--agent", help="The agent this worker serves.")],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", min=1, help="Rollouts in flight (default: the agent's config, 256)."
        ),
    ] = None,
    model_base_url: Annotated[
        str | None, typer.Option("--model-base-url", help="OpenAI-compatible base URL (/v1).")
    ] = None,
    model_name: Annotated[str | None, typer.Option("--model-name", help="Model name.")] = None,
    model_api: Annotated[
        str | None, typer.Option("--model-api", help="responses or chat_completions.")
    ] = None,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Serve one agent: consume its tasks, run rollouts, publish scored results.

    Run any number of these per agent (on any machines): they share the work through the
    agent's consumer group. SIGTERM/SIGINT: stop taking work, settle, commit, leave the group.
    The API key comes from $GYMSTREAM_MODEL_API_KEY (or $OPENAI_API_KEY) and is never printed.
    """
    setup_logging(verbose)
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    try:
        cfg = gym_config(config)
        cfg.agent(agent)
    except GymstreamError as exc:
        raise fail(str(exc)) from None
    overrides = {"base_url": model_base_url, "name": model_name, "api": model_api}
    stats = run(
        serve_until_signalled(kafka, layout, cfg, agent, overrides, concurrency),
        bootstrap=kafka.bootstrap,
    )
    failures = ", ".join(f"{k}: {v}" for k, v in stats.failures.most_common()) or "none"
    out.print(
        f"worker for {agent}: {stats.taken} taken, {stats.succeeded} succeeded, "
        f"failures: {failures}"
    )


def retry_failures_command(
    run_id: Annotated[str, typer.Option("--run-id", help="The run whose failures to retry.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The run's output JSONL.")],
    max_attempts: Annotated[
        int,
        typer.Option("--max-attempts", min=1, help="Attempts allowed per rollout, first included."),
    ] = DEFAULT_MAX_ATTEMPTS,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
) -> None:
    """Publish a run's non-terminal failures again, each with its next attempt number.

    Failures that are terminal (a 400, a verifier bug) or out of attempts stay as they are.
    Retried ones move from <stem>_failures.jsonl to <stem>_failures_history.jsonl; then run
    `gymstream sink` with the same --output and --run-id (workers must be running) to collect.
    """
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    paths = OutputPaths(output)
    state = read_run_file(paths)
    if state is None or state.get("run_id") != run_id:
        owner = state.get("run_id") if state else None
        raise fail(
            f"{output} is not the output of run '{run_id}'"
            + (f" (it belongs to '{owner}')" if owner else " (no run file beside it)")
        )
    plan = plan_resume(paths, run_id, max_attempts=max_attempts)
    if not plan.retry:
        out.print(f"nothing to retry ({plan.exhausted} failures are out of attempts)")
        return
    # publish first, then move the failures aside: a crash in between only repeats work
    counts = run(republish(kafka, layout, run_id, plan.retry), bootstrap=kafka.bootstrap)
    apply_plan(paths, plan)
    per_agent = ", ".join(f"{a}: {n}" for a, n in sorted(counts.items()))
    out.print(
        f"republished {sum(counts.values())} failed rollouts ({per_agent}); "
        f"{plan.exhausted} out of attempts. Now run: gymstream sink --output {output} "
        f"--run-id {run_id}"
    )
