"""`gymstream demo`: the whole pipeline on the two example environments, no external services.

Uses a given Kafka or starts the local one, runs the scripted model (a test double) in a thread,
builds the multi-verifier dataset and collects it with ``collect.run_collect``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.table import Table

from gymstream.cli.collect import finish, run_collect
from gymstream.cli.common import (
    BootstrapOpt,
    VerboseOpt,
    console,
    fail,
    gym_config,
    kafka_settings,
    layout_for,
    out,
    setup_logging,
)
from gymstream.cli.dataset import NumRepeatsOpt, new_run_id
from gymstream.cli.scope import scoped_layout
from gymstream.errors import GymstreamError
from gymstream.nemo_gym.outputs.files import OutputPaths
from gymstream.nemo_gym.outputs.output_row import AGENT_REF, ROLLOUT_INDEX, TASK_INDEX, agent_of
from gymstream.produce.producer import ProduceOptions

__all__ = ["demo_command", "show_rows"]


def _demo_input(path: Path) -> int:
    """The multi-verifier dataset: both example datasets, each row tagged with its agent."""
    from gymstream.nemo_gym.config.agents import environments_root

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
    from gymstream.testing.thread import start_scripted_in_thread

    setup_logging(verbose)
    env_kafka = kafka_settings(None)
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
            scoped_layout(layout_for(None, None), None, private_run=options.run_id),
            cfg,
            options,
            paths,
            model_overrides={"base_url": server.url, "name": "scripted", "api": "responses"},
            concurrency=None,
            overwrite=True,
        )
        show_rows(paths.output)
        finish(report, paths)
    finally:
        server.stop()
        if started_kafka and not keep_kafka:
            stop_cluster(kafka_data_dir)


def show_rows(path: Path) -> None:
    """Print each output row's agent, indices, reward and response size, sorted."""
    table = Table(title=str(path))
    table.add_column(f"{AGENT_REF}.name")
    table.add_column(TASK_INDEX, justify="right")
    table.add_column(ROLLOUT_INDEX, justify="right")
    table.add_column("reward", justify="right")
    table.add_column("response items", justify="right")
    rows = [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line.strip()]
    rows.sort(key=lambda r: (agent_of(r), r[TASK_INDEX], r[ROLLOUT_INDEX]))
    for row in rows:
        table.add_row(
            agent_of(row),
            str(row[TASK_INDEX]),
            str(row[ROLLOUT_INDEX]),
            f"{row['reward']:.1f}",
            str(len(row["response"]["output"])),
        )
    out.print(table)
