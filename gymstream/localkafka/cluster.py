"""Start, inspect and stop a local KRaft Kafka cluster kept in one data directory.

Layout of ``data_dir`` (every node is a combined broker+controller; ports: see config.py):

- ``cluster.json``   cluster id and size; written once, kept across stops (the data is kept too)
- ``state.json``     while running: bootstrap, ports, pids, how to restart a node; removed by stop
- ``log4j2.properties``
- ``node-<id>/``     server.properties, ``data/`` (log.dirs), server.log (broker log), console.log

Starting an already formatted directory keeps its topics and offsets. All functions block; they may
be called from inside a running event loop (use ``asyncio.to_thread`` to keep the loop responsive).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from gymstream.errors import KafkaSetupError
from gymstream.localkafka import config, probe, process, storage
from gymstream.localkafka.jars import KAFKA_VERSION, check_java, fetch_jars
from gymstream.localkafka.listeners import DevListeners, ListenerKind
from gymstream.localkafka.lock import file_lock
from gymstream.localkafka.states import ClusterStatus, NodeStatus
from gymstream.localkafka.tls import TlsFiles, ensure_certificate, tls_files

__all__ = [
    "Cluster",
    "ClusterStatus",
    "NodeStatus",
    "remove_cluster",
    "start_cluster",
    "status",
    "stop_cluster",
]


@dataclass
class Cluster:
    """A running local cluster; restart single nodes to inject broker failures.

    ``bootstrap`` lists every node, running or not, so clients keep one address list throughout.
    """

    data_dir: Path
    brokers: int
    port: int
    libs: Path
    java: str
    heap_mb: int
    pids: dict[int, int | None] = field(default_factory=dict)
    controller_base: int | None = None  # node 1's controller port; None: port + 100
    security: DevListeners = field(default_factory=DevListeners)  # dev SASL/TLS listeners

    @property
    def bootstrap(self) -> str:
        return config.bootstrap_servers(self.port, self.node_ids)

    def listener_bootstrap(self, kind: ListenerKind) -> str:
        """One security listener's bootstrap servers (ValueError: started without them)."""
        return self.security.bootstrap(kind, self.node_ids, config.HOST)

    @property
    def ca_file(self) -> Path:
        """The PEM file a client trusts for the TLS listeners (exists with --security-port)."""
        return tls_files(self.data_dir).ca_pem

    @property
    def node_ids(self) -> list[int]:
        return list(range(1, self.brokers + 1))

    def is_running(self, node_id: int) -> bool:
        return process.is_running(self.pids.get(node_id), storage.marker(self.data_dir, node_id))

    def status(self) -> ClusterStatus:
        return status(self.data_dir)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop every node (SIGTERM, then SIGKILL after timeout_s); the data stays."""
        stop_cluster(self.data_dir, timeout_s)
        self.pids = dict.fromkeys(self.node_ids)

    def stop_broker(self, node_id: int, timeout_s: float = 20.0) -> None:
        """Stop one node (controlled shutdown, SIGKILL after timeout_s).

        Returns once its process is gone and, within timeout_s, the remaining nodes' metadata no
        longer lists it.
        """
        self._check_node(node_id)
        with file_lock(self.data_dir / ".lock"):
            pid = self.pids.get(node_id)
            if pid is not None:
                process.terminate({pid: storage.marker(self.data_dir, node_id)}, timeout_s)
            self.pids[node_id] = None
            self._save_state()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not any(node_id in ids for ids in self._broker_views().values()):
                return
            time.sleep(0.1)

    def start_broker(self, node_id: int, timeout_s: float = 60.0) -> None:
        """Start one stopped node on its own data, and wait until every running node lists it."""
        self._check_node(node_id)
        with file_lock(self.data_dir / ".lock"):
            if self.is_running(node_id):
                return
            self._start_nodes([node_id], timeout_s)

    def _check_node(self, node_id: int) -> None:
        if node_id not in self.node_ids:
            raise KafkaSetupError(f"no node {node_id}: this cluster has nodes {self.node_ids}")

    def _save_state(self) -> None:
        storage.write_json(
            self.data_dir / storage.STATE,
            {
                "kafka_version": KAFKA_VERSION,
                "brokers": self.brokers,
                "port": self.port,
                "bootstrap": self.bootstrap,
                "libs": str(self.libs),
                "java": self.java,
                "heap_mb": self.heap_mb,
                "controller_port": self.controller_base,
                "security_port": self.security.base,
                "pids": {str(n): pid for n, pid in self.pids.items()},
            },
        )

    def _broker_views(self) -> dict[int, frozenset[int]]:
        """Each running node's list of brokers (nodes that do not answer are left out)."""
        views: dict[int, frozenset[int]] = {}
        for node_id in self.node_ids:
            if not self.is_running(node_id):
                continue
            try:
                reply = probe.fetch_metadata(config.HOST, config.client_port(self.port, node_id))
            except (OSError, ValueError):
                continue
            views[node_id] = reply.broker_ids
        return views

    def _start_nodes(self, node_ids: list[int], timeout_s: float) -> None:
        """Spawn the given (formatted, stopped) nodes and wait until all running nodes see them.

        On failure every node started here is stopped again and KafkaSetupError carries its log.
        """
        problem = config.check_ports_free(self.port, node_ids)
        if problem is not None:
            raise KafkaSetupError(problem)
        log4j = self.data_dir / "log4j2.properties"
        log_marks: dict[int, dict[str, int]] = {}
        for node_id in node_ids:
            node_dir = storage.node_dir(self.data_dir, node_id)
            command = process.broker_command(
                self.java,
                self.libs,
                node_dir / "server.properties",
                log4j,
                node_dir,
                self.heap_mb,
            )
            log_marks[node_id] = storage.log_sizes(self.data_dir, node_id)
            self.pids[node_id] = process.spawn(command, node_dir / "console.log")
        self._save_state()
        try:
            self._wait_ready(node_ids, timeout_s, log_marks)
        except KafkaSetupError:
            started = {n: pid for n in node_ids if (pid := self.pids.get(n)) is not None}
            process.terminate(
                {pid: storage.marker(self.data_dir, n) for n, pid in started.items()}, timeout_s=10
            )
            for node_id in node_ids:
                self.pids[node_id] = None
            self._save_state()
            raise

    def _wait_ready(
        self, started: list[int], timeout_s: float, log_marks: dict[int, dict[str, int]]
    ) -> None:
        deadline = time.monotonic() + timeout_s
        misses: dict[int, int] = dict.fromkeys(started, 0)
        while True:
            for node_id in started:
                # a JVM that is starting can briefly show no command line (the launcher may
                # re-exec itself); only several misses in a row mean the node really exited
                misses[node_id] = 0 if self.is_running(node_id) else misses[node_id] + 1
                if misses[node_id] >= 5:
                    raise KafkaSetupError(
                        f"Kafka node {node_id} exited during startup\n"
                        + storage.log_tail(self.data_dir, node_id, log_marks.get(node_id))
                    )
            if any(misses.values()):
                time.sleep(0.1)
                continue
            expected = {n for n in self.node_ids if self.is_running(n)}
            views = self._broker_views()
            if all(expected <= views.get(n, frozenset()) for n in expected):
                return
            if time.monotonic() > deadline:
                late = sorted(n for n in started if expected - views.get(n, frozenset()))
                node_id = late[0] if late else started[0]
                raise KafkaSetupError(
                    f"Kafka node {node_id} not up within {timeout_s:.0f} s "
                    f"(brokers listed by each node: {views or 'none answered'}); "
                    "raise the timeout or read the log\n"
                    + storage.log_tail(self.data_dir, node_id, log_marks.get(node_id))
                )
            time.sleep(0.1)


def _load(data_dir: Path) -> Cluster | None:
    state = storage.read_json(data_dir / storage.STATE)
    if state is None:
        return None
    try:
        raw_pids = state["pids"]
        if not isinstance(raw_pids, dict):
            raise ValueError("pids is not an object")
        return Cluster(
            data_dir=data_dir,
            brokers=int(str(state["brokers"])),
            port=int(str(state["port"])),
            libs=Path(str(state["libs"])),
            java=str(state["java"]),
            heap_mb=int(str(state["heap_mb"])),
            pids={int(k): (int(v) if v is not None else None) for k, v in raw_pids.items()},
            controller_base=_optional_port(state.get("controller_port")),
            security=DevListeners(_optional_port(state.get("security_port"))),
        )
    except (KeyError, ValueError) as exc:
        raise KafkaSetupError(
            f"{data_dir / storage.STATE} is damaged ({exc!r}): stop any broker still running from "
            f"{data_dir} (pgrep -f {data_dir}) and delete the file"
        ) from exc


def _optional_port(value: object) -> int | None:
    return None if value is None else int(str(value))


def start_cluster(
    data_dir: Path,
    brokers: int = 1,
    port: int = 9092,
    *,
    libs: Path | None = None,
    java: str = "java",
    heap_mb: int = 512,
    timeout_s: float = 60.0,
    controller_port: int | None = None,
    security_port: int | None = None,
) -> Cluster:
    """Start (or finish starting) the cluster in ``data_dir`` and wait until all nodes serve.

    A fresh directory is formatted; a formatted one keeps its data. Nodes already running are
    left alone, so calling this twice is harmless. ``libs`` defaults to :func:`fetch_jars`'s
    default cache. Raises KafkaSetupError (Java missing or < 17, Maven missing, port taken,
    a node not up within timeout_s -- with the end of its log). ``controller_port`` is node 1's
    KRaft controller port (node i uses it + i - 1); None puts the controllers at ``port + 100``.
    ``security_port`` adds development SASL_PLAINTEXT, SSL and SASL_SSL listeners per node
    (see listeners.py; a SCRAM user only where the storage is formatted with them).
    """
    if not 1 <= brokers <= config.MAX_BROKERS:
        raise KafkaSetupError(f"brokers must be between 1 and {config.MAX_BROKERS}, not {brokers}")
    problem = config.port_layout_problem(port, brokers, controller_port)
    if problem is not None:
        raise KafkaSetupError(problem)
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(data_dir / ".lock"):
        # Cheap checks first (no Java needed): what runs already, cluster size, free ports.
        running = _load(data_dir)
        alive = {n: p for n, p in running.pids.items() if running.is_running(n)} if running else {}
        if running is not None and alive:
            _check_same_layout(running, (port, brokers, controller_port, security_port))
            if len(alive) == brokers:
                return running
        cluster_id = storage.recorded_cluster_id(data_dir, brokers)
        todo = [n for n in range(1, brokers + 1) if n not in alive]
        security = DevListeners(security_port)
        problem = config.check_ports_free(port, todo, controller_port, security)
        if problem is not None:
            raise KafkaSetupError(problem)
        java_path = check_java(java)
        libs = (libs or fetch_jars()).resolve()
        if cluster_id is None:
            cluster_id = config.new_cluster_id()
        storage.write_json(
            data_dir / storage.LAYOUT,
            {
                "cluster_id": cluster_id,
                "brokers": brokers,
                "port": port,
                "version": KAFKA_VERSION,
                "controller_port": controller_port,
            },
        )
        tls = ensure_certificate(data_dir, java_path) if security.enabled else None
        _write_node_files(data_dir, todo, brokers, port, controller_port, security, tls)
        storage.format_nodes(
            data_dir, todo, cluster_id, java_path, libs, timeout_s, security.format_arguments()
        )
        cluster = Cluster(data_dir, brokers, port, libs, java_path, heap_mb, dict(alive))
        cluster.controller_base, cluster.security = controller_port, security
        cluster._start_nodes(todo, timeout_s)
        return cluster


def _check_same_layout(running: Cluster, wanted: tuple[int, int, int | None, int | None]) -> None:
    """Raise KafkaSetupError when the running cluster's ports or size differ from ``wanted``
    (port, brokers, controller port, security port)."""
    layout = (running.port, running.brokers, running.controller_base, running.security.base)
    if layout != wanted:
        raise KafkaSetupError(
            f"the cluster in {running.data_dir} already runs ({running.brokers} broker(s) on "
            f"{running.bootstrap}): stop it first (gymstream kafka stop --data-dir "
            f"{running.data_dir}) to change --port, --controller-port, --security-port or --brokers"
        )


def _write_node_files(
    data_dir: Path,
    todo: list[int],
    brokers: int,
    port: int,
    controller_port: int | None,
    security: DevListeners,
    tls: TlsFiles | None,
) -> None:
    """The log configuration and each node's data folder and server.properties."""
    log4j = resources.files("gymstream.localkafka").joinpath("log4j2.properties")
    (data_dir / "log4j2.properties").write_text(log4j.read_text("utf-8"), "utf-8")
    for node_id in todo:
        node_dir = storage.node_dir(data_dir, node_id)
        (node_dir / "data").mkdir(parents=True, exist_ok=True)
        (node_dir / "server.properties").write_text(
            config.render_properties(
                node_id, brokers, port, str(node_dir / "data"), controller_port, security, tls
            ),
            "utf-8",
        )


def stop_cluster(data_dir: Path, timeout_s: float = 20.0) -> list[int]:
    """Stop every node started from ``data_dir`` and remove state.json; the data stays.

    SIGTERM to all nodes at once, SIGKILL for any still alive after timeout_s. Returns the ids of
    the nodes that were running. Stopping a directory with nothing running is not an error.
    """
    data_dir = data_dir.expanduser().resolve()
    with file_lock(data_dir / ".lock"):
        cluster = _load(data_dir)
        if cluster is None:
            return []
        markers = {
            pid: storage.marker(data_dir, node_id)
            for node_id, pid in cluster.pids.items()
            if pid is not None
        }
        stopped = process.terminate(markers, timeout_s)
        (data_dir / storage.STATE).unlink(missing_ok=True)
        return sorted(n for n, pid in cluster.pids.items() if pid in stopped)


def status(data_dir: Path) -> ClusterStatus:
    """Which nodes of the cluster in ``data_dir`` run, with pids, ports and bootstrap."""
    data_dir = data_dir.expanduser().resolve()
    cluster = _load(data_dir)
    if cluster is None:
        layout = storage.read_json(data_dir / storage.LAYOUT)
        if layout is None:
            return ClusterStatus(data_dir, None, ())
        brokers = int(str(layout.get("brokers", 0)))
        port = int(str(layout.get("port", 0)))
        controller_base = _optional_port(layout.get("controller_port"))
        nodes = tuple(
            NodeStatus(
                node_id=n,
                pid=None,
                port=config.client_port(port, n),
                controller_port=config.controller_port(port, n, controller_base),
                running=False,
                log=storage.node_dir(data_dir, n) / "server.log",
            )
            for n in range(1, brokers + 1)
        )
        return ClusterStatus(data_dir, None, nodes)
    nodes = tuple(
        NodeStatus(
            node_id=n,
            pid=cluster.pids.get(n),
            port=config.client_port(cluster.port, n),
            controller_port=config.controller_port(cluster.port, n, cluster.controller_base),
            running=cluster.is_running(n),
            log=storage.node_dir(data_dir, n) / "server.log",
        )
        for n in cluster.node_ids
    )
    return ClusterStatus(data_dir, cluster.bootstrap, nodes)


def remove_cluster(data_dir: Path, timeout_s: float = 20.0) -> None:
    """Stop the cluster and delete ``data_dir`` with all its topics (for tests and resets)."""
    stop_cluster(data_dir, timeout_s)
    shutil.rmtree(data_dir.expanduser().resolve(), ignore_errors=True)
