"""`gymstream kafka start --controller-port`: where the KRaft controllers listen."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from gymstream.errors import KafkaSetupError
from gymstream.localkafka import start_cluster, status
from gymstream.localkafka.config import check_ports_free, controller_port, render_properties
from gymstream.localkafka.listeners import DEV_PASSWORD, DEV_USER, DevListeners
from gymstream.localkafka.tls import TlsFiles


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_default_controller_port_is_port_plus_100() -> None:
    assert controller_port(9092, 1) == 9192
    assert controller_port(9092, 3) == 9194


def test_an_explicit_controller_port_moves_every_controller() -> None:
    assert controller_port(9092, 1, 29500) == 29500
    assert controller_port(9092, 3, 29500) == 29502
    props = _props(render_properties(2, 3, 9092, "/d", controller_base=29500))
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:29500,2@127.0.0.1:29501,3@127.0.0.1:29502"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:29501"


def test_a_taken_controller_port_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = int(sock.getsockname()[1])
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            client = int(free.getsockname()[1])
        message = check_ports_free(client, [1], controller_base=taken)
    assert message is not None
    assert message.startswith(f"port {taken} (controller port of node 1)") or message.startswith(
        f"port {client} (client port of node 1)"  # another test took the freed port meanwhile
    )


def test_a_controller_port_among_the_client_ports_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KafkaSetupError, match="controller port 9093 overlaps the client ports"):
        start_cluster(tmp_path, 3, 9092, java="/nonexistent/java", controller_port=9093)


def test_status_of_a_stopped_cluster_shows_its_controller_port(tmp_path: Path) -> None:
    layout = {"cluster_id": "x", "brokers": 2, "port": 9092, "controller_port": 30000}
    (tmp_path / "cluster.json").write_text(json.dumps(layout))
    nodes = status(tmp_path).nodes
    assert [(n.port, n.controller_port) for n in nodes] == [(9092, 30000), (9093, 30001)]


def test_a_security_port_adds_three_listeners_per_node() -> None:
    tls = TlsFiles(keystore=Path("/d/tls/broker.p12"), ca_pem=Path("/d/tls/ca.pem"))
    props = _props(render_properties(2, 2, 9092, "/d", security=DevListeners(29600), tls=tls))
    added = ",SASL://127.0.0.1:29601,TLS://127.0.0.1:29611,SASLTLS://127.0.0.1:29621"
    assert props["listeners"].endswith(added)
    assert props["advertised.listeners"].endswith(added)
    assert props["listener.security.protocol.map"].endswith(
        ",SASL:SASL_PLAINTEXT,TLS:SSL,SASLTLS:SASL_SSL"
    )
    for listener in ("sasl", "sasltls"):
        mechanisms = props[f"listener.name.{listener}.sasl.enabled.mechanisms"].split(",")
        assert set(mechanisms) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"}
        plain = props[f"listener.name.{listener}.plain.sasl.jaas.config"]
        assert f'user_{DEV_USER}="{DEV_PASSWORD}"' in plain
    for listener in ("tls", "sasltls"):
        assert props[f"listener.name.{listener}.ssl.keystore.location"] == "/d/tls/broker.p12"
    assert "SASL" not in render_properties(2, 2, 9092, "/d")


def test_the_scram_user_is_created_when_the_storage_is_formatted() -> None:
    arguments = DevListeners(29600).format_arguments()
    assert arguments[0::2] == ["--add-scram", "--add-scram"]
    assert {a.split("=", 1)[0] for a in arguments[1::2]} == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    assert all(f"name={DEV_USER},password={DEV_PASSWORD}" in a for a in arguments[1::2])
    assert DevListeners(None).format_arguments() == []


def test_security_ports_are_checked_free() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        problem = check_ports_free(port + 1000, [1], security=DevListeners(port - 10))
    assert problem is not None
    assert f"port {port} (TLS listener port of node 1)" in problem
