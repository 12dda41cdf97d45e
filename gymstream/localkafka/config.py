"""Layout of a local KRaft cluster: ports, server.properties per node, cluster id, port checks.

Port scheme for a cluster started with base port P and N nodes (node ids 1..N, every node is a
combined broker+controller):

- node i serves clients on ``P + i - 1``            (P .. P+N-1; the bootstrap list)
- node i's controller listens on ``C + i - 1`` (C .. C+N-1), where C is the controller base port
  (``--controller-port``; default P + 100)
- with ``--security-port B``, node i also serves SASL_PLAINTEXT, SSL and SASL_SSL listeners at
  ``B + i - 1``, ``B + 10 + i - 1`` and ``B + 20 + i - 1`` (development only: see listeners.py)

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import os
import random
import socket
from pathlib import Path

from gymstream.localkafka.listeners import DevListeners
from gymstream.localkafka.tls import STORE_PASSWORD, TlsFiles

__all__ = [
    "CONTROLLER_PORT_OFFSET",
    "HOST",
    "MAX_BROKERS",
    "bootstrap_servers",
    "check_ports_free",
    "client_port",
    "controller_port",
    "find_free_base_port",
    "new_cluster_id",
    "port_in_use",
    "port_layout_problem",
    "port_taken_message",
    "render_properties",
]

HOST = "127.0.0.1"
CONTROLLER_PORT_OFFSET = 100
MAX_BROKERS = 9


def client_port(base_port: int, node_id: int) -> int:
    """The port node ``node_id`` (1-based) serves Kafka clients on."""
    return base_port + node_id - 1


def controller_port(base_port: int, node_id: int, controller_base: int | None = None) -> int:
    """The port node ``node_id`` (1-based) runs its KRaft controller listener on.

    ``controller_base`` is node 1's controller port; None means ``base_port + 100``.
    """
    first = base_port + CONTROLLER_PORT_OFFSET if controller_base is None else controller_base
    return first + node_id - 1


def bootstrap_servers(base_port: int, node_ids: list[int]) -> str:
    """``host:port,...`` for the given nodes, in node-id order."""
    return ",".join(f"{HOST}:{client_port(base_port, n)}" for n in sorted(node_ids))


def port_layout_problem(base_port: int, brokers: int, controller_base: int | None) -> str | None:
    """None if the client and controller ports of ``brokers`` nodes fit, else the error."""
    if controller_base is not None and (
        controller_base < 1024 or base_port - brokers < controller_base < base_port + brokers
    ):
        return (
            f"controller port {controller_base} overlaps the client ports {base_port}..."
            f"{base_port + brokers - 1} or is below 1024: choose another --controller-port"
        )
    last_port = max(controller_port(base_port, brokers, controller_base), base_port + brokers - 1)
    if base_port < 1024 or last_port > 65535:
        return (
            f"port {base_port} leaves no room for {brokers} client and controller ports "
            f"(up to {last_port}): choose a base port between 1024 and {65535 - 100 - brokers}"
        )
    return None


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (22 characters).

    Never starts with "-" (like Kafka's own Uuid.randomUuid): the storage tool's argument parser
    would read such an id as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


def render_properties(
    node_id: int,
    brokers: int,
    base_port: int,
    log_dir: str,
    controller_base: int | None = None,
    security: DevListeners | None = None,
    tls: TlsFiles | None = None,
) -> str:
    """server.properties for one combined broker+controller node of a ``brokers``-node cluster.

    Replication settings follow the cluster size: with 3+ nodes the internal topics get 3 replicas
    and min.insync.replicas 2 (survives one node down); with fewer, every factor is the node count.
    """
    if not 1 <= node_id <= brokers:
        raise ValueError(f"node id {node_id} outside 1..{brokers}")
    replication = min(brokers, 3)
    min_isr = 2 if brokers >= 3 else 1
    voters = ",".join(
        f"{n}@{HOST}:{controller_port(base_port, n, controller_base)}"
        for n in range(1, brokers + 1)
    )
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": (
            f"PLAINTEXT://{HOST}:{client_port(base_port, node_id)},"
            f"CONTROLLER://{HOST}:{controller_port(base_port, node_id, controller_base)}"
        ),
        "advertised.listeners": f"PLAINTEXT://{HOST}:{client_port(base_port, node_id)}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": log_dir,
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "default.replication.factor": str(replication),
        "offsets.topic.replication.factor": str(replication),
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": str(min_isr),
        "min.insync.replicas": "1",
        # A node restarted within the session timeout is refused ("another broker is registered
        # with that id") until the old session expires: 9 s by default, 3 s here.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
    }
    if security is not None and security.enabled:
        if tls is None:
            raise ValueError("security listeners need the cluster's TLS files")
        props.update(security.properties(node_id, HOST, props, tls.keystore, STORE_PASSWORD))
    lines = [f"# written by gymstream.localkafka for node {node_id} of {brokers}; do not edit"]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if something listens on host:port (a bind test with SO_REUSEADDR, as the JVM binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_taken_message(port: int, role: str, node_id: int) -> str:
    """The one-line error for a port that is already taken."""
    return (
        f"port {port} ({role} port of node {node_id}) is already in use: stop what listens there "
        f"(see `ss -ltnp 'sport = :{port}'`) or choose another base port (--port)"
    )


def check_ports_free(
    base_port: int,
    node_ids: list[int],
    controller_base: int | None = None,
    security: DevListeners | None = None,
) -> str | None:
    """None if every port of these nodes (client, controller, security) is free, else the error."""
    for node_id in node_ids:
        ports = [
            ("client", client_port(base_port, node_id)),
            ("controller", controller_port(base_port, node_id, controller_base)),
        ]
        if security is not None:
            ports += security.ports(node_id)
        for role, port in ports:
            if port_in_use(port):
                return port_taken_message(port, role, node_id)
    return None


def ephemeral_low(default: int = 32_768) -> int:
    """The lowest port the OS hands out for outgoing connections and ``bind(0)`` (Linux:
    ``net.ipv4.ip_local_port_range``): a broker port at or above it may be taken by any client
    socket while the broker is stopped, and then cannot be started again."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text("utf-8")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return default


def find_free_base_port(brokers: int, low: int = 20_000, high: int | None = None) -> int:
    """A random base port whose client and controller ports are all free right now (for tests).

    The whole block (client ports and the controllers' at +100) stays below the OS's ephemeral
    range, so that a node stopped by a test can be started again on the same ports.
    """
    if high is None:
        high = max(low + 1, ephemeral_low() - 101 - brokers)
    for _ in range(200):
        base = random.randrange(low, high)
        if check_ports_free(base, list(range(1, brokers + 1))) is None:
            return base
    raise OSError(f"no free block of ports for {brokers} brokers between {low} and {high}")
