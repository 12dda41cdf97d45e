"""`gymstream kafka`: fetch, start, stop and inspect a local KRaft Kafka for development and tests.

Thin: options and output only; the work is in gymstream.localkafka. ``start`` prints the bootstrap
servers alone on stdout (so ``BOOTSTRAP=$(gymstream kafka start)`` works) and everything else on
stderr. Exit codes: 0 ok, 1 the launcher failed (the message says why), 2 bad option.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from gymstream.errors import KafkaSetupError
from gymstream.localkafka import (
    KAFKA_VERSION,
    Cluster,
    ClusterStatus,
    fetch_jars,
    jars_ready,
    start_cluster,
    status,
    stop_cluster,
)
from gymstream.localkafka.config import MAX_BROKERS
from gymstream.localkafka.listeners import DEV_PASSWORD, DEV_USER
from gymstream.localkafka.settings import LocalKafkaSettings

app = typer.Typer(
    help=(
        f"Run a local Apache Kafka {KAFKA_VERSION} (KRaft, no ZooKeeper) in the background. "
        "Needs Java 17+; Maven downloads the jars once into a per-user cache."
    ),
    no_args_is_help=True,
)

_T = TypeVar("_T")

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with the cluster's data, logs and pids "
        "(default: ./.gymstream/kafka, env GYMSTREAM_LOCALKAFKA_DATA_DIR).",
        file_okay=False,
        show_default=False,
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where the Kafka jars are cached (default: ~/.cache/gymstream, env "
        "GYMSTREAM_KAFKA_CACHE).",
        file_okay=False,
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Seconds to wait for the brokers to start or stop (default: 60 to start, 20 to stop).",
        min=1,
        show_default=False,
    ),
]


def _settings() -> LocalKafkaSettings:
    try:
        return LocalKafkaSettings()
    except ValueError as exc:  # pydantic.ValidationError: a bad GYMSTREAM_LOCALKAFKA_* value
        first = str(exc).splitlines()
        typer.echo(
            f"error: invalid launcher setting in the environment: {' '.join(first[:3])}", err=True
        )
        raise typer.Exit(2) from exc


def _run(action: Callable[[], _T]) -> _T:
    """Run a launcher call; a KafkaSetupError becomes its message on stderr and exit code 1."""
    try:
        return action()
    except KafkaSetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _print_status(state: ClusterStatus) -> None:
    if not state.nodes:
        typer.echo(f"no Kafka cluster in {state.data_dir}", err=True)
        return
    up = sum(n.running for n in state.nodes)
    typer.echo(f"{state.data_dir}: {up} of {len(state.nodes)} node(s) running", err=True)
    for node in state.nodes:
        what = f"running, pid {node.pid}" if node.running else "stopped"
        typer.echo(
            f"  node {node.node_id}: {what}; client port {node.port}, "
            f"controller port {node.controller_port}; log {node.log}",
            err=True,
        )
    if state.bootstrap and up:
        typer.echo(state.bootstrap)


@app.command()
def fetch(cache_dir: CacheDirOpt = None) -> None:
    """Download the Kafka jars with Maven into the cache; later calls only check the files."""
    settings = _settings()
    cache = (cache_dir or settings.cache_dir).expanduser()
    if jars_ready(cache) is None:
        typer.echo(f"fetching the Kafka {KAFKA_VERSION} jars with Maven ...", err=True)
    began = time.monotonic()
    libs = _run(lambda: fetch_jars(cache, mvn=settings.mvn))
    typer.echo(f"Kafka {KAFKA_VERSION} jars ready in {libs} ({time.monotonic() - began:.1f} s)")


BrokersOpt = Annotated[
    int | None,
    typer.Option(
        "--brokers",
        "-n",
        help="Number of nodes, each a broker and a KRaft controller (default: 1).",
        min=1,
        max=MAX_BROKERS,
        show_default=False,
    ),
]
PortOpt = Annotated[
    int | None,
    typer.Option(
        "--port",
        "-p",
        help="Client port of node 1; node i uses PORT+i-1, its controller PORT+100+i-1 "
        "unless --controller-port is given (default: 9092).",
        min=1024,
        max=65000,
        show_default=False,
    ),
]
ControllerPortOpt = Annotated[
    int | None,
    typer.Option(
        "--controller-port",
        help="KRaft controller port of node 1; node i uses CONTROLLER_PORT+i-1 "
        "(default: $GYMSTREAM_LOCALKAFKA_CONTROLLER_PORT or PORT+100).",
        min=1024,
        max=65000,
        show_default=False,
    ),
]
SecurityPortOpt = Annotated[
    int | None,
    typer.Option(
        "--security-port",
        help="Also serve development SASL_PLAINTEXT (this port), SSL (+10) and SASL_SSL (+20) "
        "listeners (node i: +i-1) for trying the GYMSTREAM_KAFKA_* security settings: PLAIN "
        f"and SCRAM-SHA-256/512 with user {DEV_USER} / password {DEV_PASSWORD}, OAUTHBEARER "
        "with unsigned JWTs, a self-signed certificate (its PEM is printed). Never production.",
        min=1024,
        max=65000,
        show_default=False,
    ),
]


@app.command()
def start(
    brokers: BrokersOpt = None,
    data_dir: DataDirOpt = None,
    port: PortOpt = None,
    controller_port: ControllerPortOpt = None,
    security_port: SecurityPortOpt = None,
    timeout: TimeoutOpt = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Start the cluster in the background (earlier data kept); print its bootstrap servers."""
    settings = _settings()
    directory = data_dir or settings.data_dir
    n = brokers or settings.brokers
    already = _run(lambda: status(directory)).running
    began = time.monotonic()
    cluster = _run(
        lambda: start_cluster(
            directory,
            n,
            port or settings.port,
            libs=fetch_jars((cache_dir or settings.cache_dir).expanduser(), mvn=settings.mvn),
            java=settings.java,
            heap_mb=settings.heap_mb,
            timeout_s=timeout or settings.start_timeout_s,
            controller_port=controller_port or settings.controller_port,
            security_port=security_port,
        )
    )
    how = "were already running" if already else f"started in {time.monotonic() - began:.1f} s"
    stop_hint = f"gymstream kafka stop{f' --data-dir {directory}' if data_dir else ''}"
    typer.echo(
        f"Kafka {KAFKA_VERSION}: {n} node(s) from {cluster.data_dir} {how}; "
        f"stop with `{stop_hint}`",
        err=True,
    )
    if cluster.security.enabled:
        _say_security(cluster)
    typer.echo(cluster.bootstrap)


def _say_security(cluster: Cluster) -> None:
    """Where the development security listeners are and how to log in (stderr)."""
    for kind in ("SASL", "TLS", "SASLTLS"):
        protocol = cluster.security.security_protocol(kind)
        typer.echo(f"{protocol} at {cluster.listener_bootstrap(kind)}", err=True)
    typer.echo(
        f"SASL user {DEV_USER}, password {DEV_PASSWORD} (PLAIN, SCRAM-SHA-256/512; "
        f"OAUTHBEARER: unsigned JWTs); TLS CA file {cluster.ca_file}",
        err=True,
    )


@app.command()
def stop(data_dir: DataDirOpt = None, timeout: TimeoutOpt = None) -> None:
    """Stop the cluster's nodes (SIGTERM, then SIGKILL after the timeout); the data stays."""
    directory = data_dir or _settings().data_dir
    stopped = _run(lambda: stop_cluster(directory, timeout or 20.0))
    if stopped:
        typer.echo(f"stopped node(s) {', '.join(map(str, stopped))} of {directory}", err=True)
    else:
        typer.echo(f"nothing was running from {directory}", err=True)


@app.command("status")
def show_status(data_dir: DataDirOpt = None) -> None:
    """Show which nodes run (pids, ports, logs); exit code 0 only if all of them run."""
    directory = data_dir or _settings().data_dir
    state = _run(lambda: status(directory))
    _print_status(state)
    if not state.running:
        raise typer.Exit(1)
