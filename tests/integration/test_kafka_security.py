"""Kafka security settings against a real broker: SASL (PLAIN, SCRAM, OAUTHBEARER), SSL, SASL_SSL.

The node (``start_cluster(security_port=...)``) serves the launcher's development listeners
(gymstream/localkafka/listeners.py): SASL_PLAINTEXT, SSL with a self-signed certificate, and
SASL_SSL, with one PLAIN/SCRAM user and Kafka's unsecured JWT validator (alg "none"), so the test
makes its own tokens. It proves the whole client path, KafkaSettings -> kafka.clients -> aiokafka's
handshakes, through the library and the CLI; a credential or certificate the broker or client
refuses is one line, not a traceback. Its own broker: the session's has no security listeners.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.pipeline import ROOT
from fixtures.waits import run_to_end

from gymstream.kafka.clients import build_consumer, build_producer, client_options
from gymstream.kafka.topics import apply_topics, load_layout
from gymstream.localkafka import Cluster, fetch_jars, remove_cluster, start_cluster
from gymstream.localkafka.config import find_free_base_port, port_in_use
from gymstream.localkafka.listeners import DEV_PASSWORD, DEV_USER, LISTENER_STRIDE, ListenerKind
from gymstream.localkafka.settings import LocalKafkaSettings
from gymstream.settings import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

AGENT = "example_single_tool_call_simple_agent"


def unsecured_jwt(subject: str, lifetime_s: float) -> str:
    """A token Kafka's OAuthBearerUnsecuredValidatorCallbackHandler accepts (until it expires)."""

    def part(value: dict[str, object]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = time.time()
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + lifetime_s})}."


def _free_security_base(start: int) -> int:
    """A base whose three listener ports (base, +10, +20) are free."""
    port = start
    while any(port_in_use(port + k * LISTENER_STRIDE) for k in range(3)):
        port += 1
    return port


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    settings = LocalKafkaSettings()
    data_dir = tmp_path_factory.mktemp("kafka-security")
    port = find_free_base_port(1)
    cluster = start_cluster(
        data_dir,
        1,
        port,
        libs=fetch_jars(settings.cache_dir, mvn=settings.mvn),
        java=settings.java,
        heap_mb=settings.heap_mb,
        timeout_s=settings.start_timeout_s,
        security_port=_free_security_base(port + 200),
    )
    try:
        yield cluster
    finally:
        remove_cluster(data_dir, timeout_s=10)


def _oauth_settings(cluster: Cluster, **source: str) -> KafkaSettings:
    return KafkaSettings.model_validate(
        {
            "bootstrap": cluster.listener_bootstrap("SASL"),
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "OAUTHBEARER",
            "client_id": "oauth-test",
            **source,
        }
    )


async def _round_trip(kafka: KafkaSettings, name: str) -> None:
    """Create the topics (admin), publish one record (producer) and read it back (consumer)."""
    layout = load_layout(prefix=f"{name}{uuid.uuid4().hex[:6]}")
    report = await apply_topics(client_options(kafka), layout, [AGENT])
    assert layout.tasks(AGENT) in report.created
    payload = f'{{"hello":"{name}"}}'.encode()
    producer = build_producer(kafka)
    await producer.start()
    try:
        await (await producer.send(layout.results, payload, key=b"k"))
    finally:
        await producer.stop()
    consumer = build_consumer(kafka, layout.results, group_id=None)
    await consumer.start()
    try:
        message = await consumer.getone()
    finally:
        await consumer.stop()
    assert message.value == payload


async def test_a_token_file_authenticates_producer_admin_and_consumer(
    secure_cluster: Cluster, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(unsecured_jwt("trainer", 600) + "\n")
    await _round_trip(_oauth_settings(secure_cluster, sasl_oauth_token_file=str(token)), "oauth")


def _settings(cluster: Cluster, kind: ListenerKind, **fields: str) -> KafkaSettings:
    values: dict[str, str] = {
        "bootstrap": cluster.listener_bootstrap(kind),
        "security_protocol": cluster.security.security_protocol(kind),
        "client_id": f"security-test-{kind.lower()}",
    }
    if kind in ("TLS", "SASLTLS"):
        values["ssl_cafile"] = str(cluster.ca_file)
    return KafkaSettings.model_validate(values | fields)


@pytest.mark.parametrize(
    ("kind", "mechanism"),
    [
        ("SASL", "PLAIN"),
        ("SASL", "SCRAM-SHA-256"),
        ("SASL", "SCRAM-SHA-512"),
        ("TLS", None),
        ("SASLTLS", "SCRAM-SHA-512"),
        ("SASLTLS", "PLAIN"),
    ],
)
async def test_each_protocol_and_mechanism_round_trips(
    secure_cluster: Cluster, kind: ListenerKind, mechanism: str | None
) -> None:
    credentials = (
        {}
        if mechanism is None
        else {"sasl_mechanism": mechanism, "sasl_username": DEV_USER, "sasl_password": DEV_PASSWORD}
    )
    name = f"{kind}{mechanism or ''}".lower().replace("-", "")
    await _round_trip(_settings(secure_cluster, kind, **credentials), name)


def _cli(
    cluster: Cluster,
    env_extra: dict[str, str],
    kind: ListenerKind = "SASL",
    args: tuple[str, ...] = ("topics", "apply", "--agent", AGENT),
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GYMSTREAM_")}
    env |= {
        "GYMSTREAM_KAFKA_BOOTSTRAP": cluster.listener_bootstrap(kind),
        "GYMSTREAM_KAFKA_SECURITY_PROTOCOL": cluster.security.security_protocol(kind),
        "GYMSTREAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "GYMSTREAM_KAFKA_REQUEST_TIMEOUT_MS": "10000",
        "GYMSTREAM_TOPIC_PREFIX": f"seccli{uuid.uuid4().hex[:6]}",
        **env_extra,
    }
    return run_to_end([sys.executable, "-m", "gymstream.cli.main", *args], env=env)


def test_topics_apply_authenticates_with_a_token_command(secure_cluster: Cluster) -> None:
    token = unsecured_jwt("ops", 600)
    command = f"{sys.executable} -c \"print('{token}')\""
    result = _cli(secure_cluster, {"GYMSTREAM_KAFKA_SASL_OAUTH_TOKEN_COMMAND": command})
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout


def test_produce_asks_the_topic_limits_with_the_token_too(
    secure_cluster: Cluster, tmp_path: Path
) -> None:
    # produce's admin client (max.message.bytes of the task topics) once lacked the token
    # provider: OAUTHBEARER clusters refused it. Topics first, then the rows, one token command.
    token = unsecured_jwt("producer", 600)
    env = {"GYMSTREAM_KAFKA_SASL_OAUTH_TOKEN_COMMAND": f"{sys.executable} -c \"print('{token}')\""}
    prefix = {"GYMSTREAM_TOPIC_PREFIX": f"secprod{uuid.uuid4().hex[:6]}"}
    assert _cli(secure_cluster, env | prefix).returncode == 0
    rows = ROOT / "environments" / "example_single_tool_call" / "data" / "example.jsonl"
    done = _cli(
        secure_cluster,
        env | prefix,
        args=(
            "produce",
            "--input",
            str(rows),
            "--agent-name",
            AGENT,
            "--run-id",
            f"s{uuid.uuid4().hex[:6]}",
        ),
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_token_is_one_line_not_a_traceback(secure_cluster: Cluster) -> None:
    expired = unsecured_jwt("late", -60)
    result = _cli(secure_cluster, {"GYMSTREAM_KAFKA_SASL_OAUTH_TOKEN": expired})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "GYMSTREAM_KAFKA_SASL_" in errors[0]  # says where to look


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_wrong_scram_password_is_one_line(secure_cluster: Cluster) -> None:
    result = _cli(
        secure_cluster,
        {
            "GYMSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "GYMSTREAM_KAFKA_SASL_USERNAME": DEV_USER,
            "GYMSTREAM_KAFKA_SASL_PASSWORD": "not-the-password",
        },
    )
    assert "GYMSTREAM_KAFKA_SASL_" in _one_error_line(result)


def test_scram_over_tls_through_the_cli(secure_cluster: Cluster) -> None:
    result = _cli(
        secure_cluster,
        {
            "GYMSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "GYMSTREAM_KAFKA_SASL_USERNAME": DEV_USER,
            "GYMSTREAM_KAFKA_SASL_PASSWORD": DEV_PASSWORD,
            "GYMSTREAM_KAFKA_SSL_CAFILE": str(secure_cluster.ca_file),
        },
        kind="SASLTLS",
    )
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout


def test_an_untrusted_certificate_is_one_line(secure_cluster: Cluster) -> None:
    # No GYMSTREAM_KAFKA_SSL_CAFILE: the system's CAs do not trust the cluster's certificate.
    result = _cli(secure_cluster, {"GYMSTREAM_KAFKA_SASL_MECHANISM": ""}, kind="TLS")
    line = _one_error_line(result)
    assert "GYMSTREAM_KAFKA_SECURITY_PROTOCOL" in line
