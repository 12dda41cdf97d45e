"""`gymstream collect` (NeMo Gym's collector over Kafka) and `gymstream demo`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
from gymstream.cli.pipeline import (
    AgentNameOpt,
    FailFastOpt,
    LimitOpt,
    NumRepeatsOpt,
    ParamsOpt,
    PerAgentOpt,
    RunIdOpt,
    SeedOpt,
    check_input,
    new_run_id,
    print_produce_summary,
    print_reject,
    print_sink_summary,
    produce_options,
    repeats_value,
)
from gymstream.collect import CollectReport, collect
from gymstream.config import GymConfig
from gymstream.errors import GymstreamError
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo.outputs import OutputPaths
from gymstream.produce.producer import ProduceOptions
from gymstream.settings import KafkaSettings, RetrySettings
from gymstream.sink.loop import SinkReport


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
    overwrite: bool,
    show_progress: bool = True,
    worker_processes: int = 0,
) -> CollectReport:
    with progress_bar(show_progress) as bar:
        report = run(
            collect(
                kafka,
                layout,
                cfg,
                options,
                paths,
                model_overrides=model_overrides,
                retry=RetrySettings(),
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
    input_path: Annotated[Path, typer.Option("--input", "-i", help="NeMo Gym JSONL dataset.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL (NeMo Gym rows).")],
    agent_name: AgentNameOpt = None,
    num_repeats: NumRepeatsOpt = None,
    num_repeats_per_agent: PerAgentOpt = None,
    limit: LimitOpt = None,
    responses_create_params: ParamsOpt = None,
    run_id: RunIdOpt = None,
    rollout_seed: SeedOpt = None,
    fail_fast: FailFastOpt = False,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Rollouts in flight per agent."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an output that belongs to another run.")
    ] = False,
    model_base_url: Annotated[
        str | None, typer.Option("--model-base-url", help="OpenAI-compatible base URL (/v1).")
    ] = None,
    model_name: Annotated[str | None, typer.Option("--model-name", help="Model name.")] = None,
    model_api: Annotated[
        str | None, typer.Option("--model-api", help="responses or chat_completions.")
    ] = None,
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
    cfg = gym_config(config)
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
    )
    report = run_collect(
        kafka,
        layout,
        cfg,
        options,
        paths,
        model_overrides={"base_url": model_base_url, "name": model_name, "api": model_api},
        concurrency=concurrency,
        overwrite=overwrite,
        show_progress=not no_progress,
        worker_processes=worker_processes,
    )
    finish(report)


def finish(report: CollectReport) -> None:
    if report.produced is not None and report.produced.stopped_at is not None:
        raise fail(f"stopped at the first bad row (--fail-fast): {report.produced.stopped_at}")
    if report.missing != 0:
        raise fail(f"{report.missing} rollouts missing from the output", 1)


def _demo_input(path: Path) -> int:
    """The multi-verifier dataset: both example datasets, each row tagged with its agent."""
    from gymstream.config import environments_root

    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for env in ("example_single_tool_call", "example_multi_step"):
            source = environments_root() / env / "data" / "example.jsonl"
            for line in source.read_bytes().splitlines():
                if not line.strip():
                    continue
                row = msgspec.json.decode(line)
                row["agent_ref"] = {"type": "responses_api_agents", "name": f"{env}_simple_agent"}
                handle.write(msgspec.json.encode(row) + b"\n")
                rows += 1
    return rows


def demo_command(
    output_dir: Annotated[Path, typer.Option("--output-dir", help="Where the results go.")] = Path(
        "results"
    ),
    num_repeats: NumRepeatsOpt = None,
    kafka_data_dir: Annotated[
        Path, typer.Option("--kafka-data-dir", help="Data dir of the local Kafka it may start.")
    ] = Path(".gymstream/kafka"),
    keep_kafka: Annotated[
        bool, typer.Option("--keep-kafka", help="Leave a Kafka this command started running.")
    ] = False,
    bootstrap: BootstrapOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Collect rollouts for both example environments with no external services.

    Uses $GYMSTREAM_KAFKA_BOOTSTRAP (or --bootstrap) when set, else starts the local Kafka;
    starts the scripted model (a test double that plays the example environments); writes
    results/test_multiverifier_outputs.jsonl and shows each row's agent and reward.
    """
    from gymstream.localkafka import start_cluster, status, stop_cluster
    from gymstream.localkafka.config import check_ports_free, find_free_base_port
    from gymstream.settings import KafkaSettings
    from gymstream.testing.thread import start_scripted_in_thread

    setup_logging(verbose)
    env_kafka = KafkaSettings()
    started_kafka = False
    if bootstrap is None and "bootstrap" not in env_kafka.model_fields_set:
        running = status(kafka_data_dir)
        if running.running and running.bootstrap:
            bootstrap = running.bootstrap  # a local Kafka of an earlier `--keep-kafka` demo
        else:
            # 9092 unless something else listens there (another Kafka, say): then any free port
            port = 9092 if check_ports_free(9092, [1]) is None else find_free_base_port(1)
            console.print("starting the local Kafka (the first run fetches it with Maven)...")
            try:
                cluster = start_cluster(kafka_data_dir, port=port)
            except GymstreamError as exc:
                raise fail(str(exc), 1) from None
            bootstrap = cluster.bootstrap
            started_kafka = True
        console.print(f"Kafka at {bootstrap}")
    kafka = kafka_settings(bootstrap)
    server = start_scripted_in_thread()
    try:
        console.print(f"scripted model at {server.url}")
        input_path = output_dir / "test_multiverifier_input.jsonl"
        n = _demo_input(input_path)
        console.print(f"{n} rows in {input_path}")
        cfg = gym_config(None)
        paths = OutputPaths(output_dir / "test_multiverifier_outputs.jsonl")
        options = ProduceOptions(
            input_path=input_path,
            run_id=f"demo-{new_run_id()}",
            known_agents=frozenset(cfg.agents),
            num_repeats=num_repeats or 1,
            rollout_seed=0,  # the rollouts of a group differ, as sampling would make them
            rejects_path=paths.rejects,
            materialized_path=paths.materialized,
        )
        report = run_collect(
            kafka,
            layout_for(None, None),
            cfg,
            options,
            paths,
            model_overrides={"base_url": server.url, "name": "scripted", "api": "responses"},
            concurrency=None,
            overwrite=True,
        )
        show_rows(paths.output)
        finish(report)
    finally:
        server.stop()
        if started_kafka and not keep_kafka:
            stop_cluster(kafka_data_dir)


def show_rows(path: Path) -> None:
    table = Table(title=str(path))
    table.add_column("agent_ref.name")
    table.add_column("_ng_task_index", justify="right")
    table.add_column("_ng_rollout_index", justify="right")
    table.add_column("reward", justify="right")
    table.add_column("response items", justify="right")
    rows = [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line.strip()]
    rows.sort(key=lambda r: (r["agent_ref"]["name"], r["_ng_task_index"], r["_ng_rollout_index"]))
    for row in rows:
        table.add_row(
            row["agent_ref"]["name"],
            str(row["_ng_task_index"]),
            str(row["_ng_rollout_index"]),
            f"{row['reward']:.1f}",
            str(len(row["response"]["output"])),
        )
    out.print(table)
