"""The local Kafka launcher's pure parts: properties, ports, version parsing, probe codec, cache."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from gymstream.errors import KafkaSetupError
from gymstream.localkafka import (
    KAFKA_VERSION,
    find_free_base_port,
    jars_ready,
    start_cluster,
    status,
)
from gymstream.localkafka.config import (
    bootstrap_servers,
    check_ports_free,
    new_cluster_id,
    render_properties,
)
from gymstream.localkafka.jars import check_java, fetch_jars, parse_java_version
from gymstream.localkafka.probe import decode_metadata_reply, encode_metadata_request


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port something listens on (taken for the duration of the test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_properties_for_a_single_node() -> None:
    props = _props(render_properties(1, 1, 9092, "/data/n1"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9192"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9192"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["log.dirs"] == "/data/n1"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1", key


def test_properties_for_node_two_of_three() -> None:
    props = _props(render_properties(2, 3, 20000, "/data/n2"))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:20100,2@127.0.0.1:20101,3@127.0.0.1:20102"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:20001,CONTROLLER://127.0.0.1:20101"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:20001"
    assert props["default.replication.factor"] == "3"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"


def test_properties_reject_a_node_outside_the_cluster() -> None:
    with pytest.raises(ValueError, match=r"node id 4 outside 1\.\.3"):
        render_properties(4, 3, 9092, "/d")


def test_bootstrap_lists_client_ports_in_node_order() -> None:
    assert bootstrap_servers(9092, [3, 1, 2]) == "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"


def test_cluster_id_is_22_base64url_characters_not_starting_with_a_dash() -> None:
    ids = {new_cluster_id() for _ in range(2000)}  # 1 in 64 random ids starts with "-"
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cid) for cid in ids)


def test_taken_port_is_named_with_its_role_and_node(listening_port: int) -> None:
    message = check_ports_free(listening_port, [1])
    assert message == (
        f"port {listening_port} (client port of node 1) is already in use: stop what listens "
        f"there (see `ss -ltnp 'sport = :{listening_port}'`) or choose another base port (--port)"
    )


def test_taken_controller_port_is_reported(listening_port: int) -> None:
    base = listening_port - 100 - 1
    message = check_ports_free(base, [1, 2])
    assert message is not None
    if not message.startswith(f"port {listening_port} (controller port of node 2)"):
        # under xdist another test's ephemeral port may sit on one of the three lower ports,
        # which are checked first: then that one must be the port named, with its role
        roles = {
            base: "client port of node 1",
            base + 1: "client port of node 2",
            base + 100: "controller port of node 1",
        }
        named = int(message.split()[1])
        assert named in roles, message
        assert message.startswith(f"port {named} ({roles[named]})"), message


def test_start_cluster_refuses_a_taken_port_before_looking_for_java(
    tmp_path: Path, listening_port: int
) -> None:
    with pytest.raises(KafkaSetupError, match=rf"^port {listening_port} \(client port of node 1\)"):
        start_cluster(tmp_path, 1, listening_port, java="/nonexistent/java")
    assert not status(tmp_path).running


def test_start_cluster_refuses_another_cluster_size(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text(json.dumps({"cluster_id": "x", "brokers": 1}))
    with pytest.raises(
        KafkaSetupError, match="holds a 1-broker cluster: start it with --brokers 1"
    ):
        start_cluster(tmp_path, 3, 9092, java="/nonexistent/java")


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_292"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "22-ea" 2024-03-19', 22),
        ('java version "11.0.2" 2019-01-15 LTS', 11),
    ],
)
def test_java_version_is_parsed(output: str, major: int) -> None:
    assert parse_java_version(output) == major


def test_unparsable_java_version_raises() -> None:
    with pytest.raises(ValueError, match="no version found"):
        parse_java_version("bash: java: command not found")


def _fake_java(tmp_path: Path, version: str) -> Path:
    script = tmp_path / "java"
    script.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2020-01-01' >&2\n")
    script.chmod(0o755)
    return script


def test_old_java_is_refused_with_what_to_install(tmp_path: Path) -> None:
    java = _fake_java(tmp_path, "11.0.20")
    with pytest.raises(
        KafkaSetupError, match=r"is Java 11, Kafka .* needs 17\+: install a JDK 17\+"
    ):
        check_java(str(java))


def test_java_17_is_accepted(tmp_path: Path) -> None:
    java = _fake_java(tmp_path, "17.0.1")
    assert check_java(str(java)) == str(java)


def test_missing_java_says_what_to_install() -> None:
    with pytest.raises(KafkaSetupError, match=r"^Java \(/nonexistent/java\) not found on PATH"):
        check_java("/nonexistent/java")


def test_kafka_version_matches_the_pom() -> None:
    pom = resources.files("gymstream.localkafka").joinpath("pom.xml").read_text("utf-8")
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match is not None
    assert match.group(1) == KAFKA_VERSION


def test_cached_jars_are_used_without_maven(tmp_path: Path) -> None:
    version_dir = tmp_path / f"kafka-{KAFKA_VERSION}"
    (version_dir / "libs").mkdir(parents=True)
    (version_dir / "libs" / "kafka.jar").write_bytes(b"jar")
    assert jars_ready(tmp_path) is None  # no marker: an interrupted copy is not trusted
    pom = resources.files("gymstream.localkafka").joinpath("pom.xml").read_text("utf-8")
    marker = {"pom_sha256": hashlib.sha256(pom.encode()).hexdigest(), "jars": ["kafka.jar"]}
    (version_dir / "libs.complete").write_text(json.dumps(marker))
    assert fetch_jars(tmp_path, mvn="/nonexistent/mvn") == version_dir / "libs"
    (version_dir / "libs" / "kafka.jar").unlink()
    assert jars_ready(tmp_path) is None  # a jar went missing: fetch again


def test_missing_maven_is_reported_when_jars_are_not_cached(tmp_path: Path) -> None:
    with pytest.raises(KafkaSetupError, match=r"^Maven \(/nonexistent/mvn\) not found: install"):
        fetch_jars(tmp_path, mvn="/nonexistent/mvn")


def test_metadata_request_encoding() -> None:
    request = encode_metadata_request(7)
    (size,) = struct.unpack(">i", request[:4])
    assert size == len(request) - 4
    api_key, version, correlation = struct.unpack(">hhi", request[4:12])
    assert (api_key, version, correlation) == (3, 4, 7)
    assert request.endswith(struct.pack(">ib", 0, 0))  # no topics, no auto-creation


def _broker(node_id: int, host: bytes, port: int) -> bytes:
    return struct.pack(">ih", node_id, len(host)) + host + struct.pack(">ih", port, -1)


def test_metadata_reply_decoding() -> None:
    brokers = _broker(1, b"127.0.0.1", 9092) + _broker(3, b"127.0.0.1", 9094)
    cluster = b"abc"
    payload = (
        struct.pack(">iii", 7, 0, 2)
        + brokers
        + struct.pack(">h", len(cluster))
        + cluster
        + struct.pack(">ii", 3, 0)
    )
    reply = decode_metadata_reply(payload, 7)
    assert reply.broker_ids == {1, 3}
    assert reply.cluster_id == "abc"
    assert reply.controller_id == 3


def test_truncated_metadata_reply_is_an_error() -> None:
    with pytest.raises(ValueError, match="truncated"):
        decode_metadata_reply(struct.pack(">iii", 7, 0, 2), 7)
    with pytest.raises(ValueError, match="correlation id mismatch"):
        decode_metadata_reply(struct.pack(">i", 8), 7)


def test_status_of_an_empty_directory(tmp_path: Path) -> None:
    state = status(tmp_path)
    assert state.nodes == ()
    assert state.bootstrap is None
    assert not state.running


def test_free_base_ports_stay_below_the_ephemeral_range() -> None:
    """A test stops and restarts nodes: their ports must not be ones a client socket may take."""
    from gymstream.localkafka.config import ephemeral_low

    top = ephemeral_low()
    for _ in range(50):
        base = find_free_base_port(3)
        assert base + 100 + 3 < top  # the last controller port of the block
