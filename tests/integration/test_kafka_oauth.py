"""OAUTHBEARER against a real broker: a local node with an OAUTHBEARER listener.

The node (``start_cluster(oauth_port=...)``) accepts Kafka's unsecured JWTs (alg "none", the
broker's default validator when none is configured), so the test makes its own tokens. It proves
the whole client path: KafkaSettings -> kafka.clients -> aiokafka's SASL/OAUTHBEARER handshake,
for a token file and a token command, through the library and the CLI; a token the broker refuses
is one line, not a traceback. Its own broker: the session's has no SASL listener.
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

from gymstream.kafka.clients import build_consumer, build_producer, client_options
from gymstream.kafka.topics import apply_topics, load_layout
from gymstream.localkafka import Cluster, fetch_jars, remove_cluster, start_cluster
from gymstream.localkafka.config import find_free_base_port, port_in_use
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


def _free_port(start: int) -> int:
    port = start
    while port_in_use(port):
        port += 1
    return port


@pytest.fixture(scope="module")
def oauth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    settings = LocalKafkaSettings()
    data_dir = tmp_path_factory.mktemp("kafka-oauth")
    port = find_free_base_port(1)
    cluster = start_cluster(
        data_dir,
        1,
        port,
        libs=fetch_jars(settings.cache_dir, mvn=settings.mvn),
        java=settings.java,
        heap_mb=settings.heap_mb,
        timeout_s=settings.start_timeout_s,
        oauth_port=_free_port(port + 200),
    )
    try:
        yield cluster
    finally:
        remove_cluster(data_dir, timeout_s=10)


def _oauth_settings(cluster: Cluster, **source: str) -> KafkaSettings:
    assert cluster.oauth_bootstrap is not None
    return KafkaSettings.model_validate(
        {
            "bootstrap": cluster.oauth_bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "OAUTHBEARER",
            "client_id": "oauth-test",
            **source,
        }
    )


async def test_a_token_file_authenticates_producer_admin_and_consumer(
    oauth_cluster: Cluster, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(unsecured_jwt("trainer", 600) + "\n")
    kafka = _oauth_settings(oauth_cluster, sasl_oauth_token_file=str(token))
    layout = load_layout(prefix=f"oauth{uuid.uuid4().hex[:6]}")
    report = await apply_topics(client_options(kafka), layout, [AGENT])
    assert layout.tasks(AGENT) in report.created
    producer = build_producer(kafka)
    await producer.start()
    try:
        await (await producer.send(layout.results, b'{"hello":"oauth"}', key=b"k"))
    finally:
        await producer.stop()
    consumer = build_consumer(kafka, layout.results, group_id=None)
    await consumer.start()
    try:
        message = await consumer.getone()
    finally:
        await consumer.stop()
    assert message.value == b'{"hello":"oauth"}'


def _cli(cluster: Cluster, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GYMSTREAM_")}
    env |= {
        "GYMSTREAM_KAFKA_BOOTSTRAP": cluster.oauth_bootstrap or "",
        "GYMSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "GYMSTREAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "GYMSTREAM_KAFKA_REQUEST_TIMEOUT_MS": "10000",
        "GYMSTREAM_TOPIC_PREFIX": f"oauthcli{uuid.uuid4().hex[:6]}",
        **env_extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "gymstream.cli.main", "topics", "apply", "--agent", AGENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_topics_apply_authenticates_with_a_token_command(oauth_cluster: Cluster) -> None:
    token = unsecured_jwt("ops", 600)
    command = f"{sys.executable} -c \"print('{token}')\""
    result = _cli(oauth_cluster, {"GYMSTREAM_KAFKA_SASL_OAUTH_TOKEN_COMMAND": command})
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout


def test_a_refused_token_is_one_line_not_a_traceback(oauth_cluster: Cluster) -> None:
    expired = unsecured_jwt("late", -60)
    result = _cli(oauth_cluster, {"GYMSTREAM_KAFKA_SASL_OAUTH_TOKEN": expired})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "GYMSTREAM_KAFKA_SASL_" in errors[0]  # says where to look
