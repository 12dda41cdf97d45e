"""Kafka client settings in Kafka's own names: variables and a properties file reach aiokafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, build_producer, client_options
from gymstream.kafka.passthrough import check, client_settings
from gymstream.settings import KafkaSettings


def settings(monkeypatch: pytest.MonkeyPatch, **variables: str) -> KafkaSettings:
    for name in ("GYMSTREAM_KAFKA_CONFIG_FILE",):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return KafkaSettings()


def test_a_producer_variable_is_kafkas_dotted_name(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = settings(
        monkeypatch,
        GYMSTREAM_KAFKA_PRODUCER_LINGER_MS="7",
        GYMSTREAM_KAFKA_PRODUCER_BATCH_SIZE="1234",
        GYMSTREAM_KAFKA_CONSUMER_FETCH_MAX_WAIT_MS="77",
    )
    assert kafka.producer == {"linger.ms": "7", "batch.size": "1234"}
    assert client_settings(kafka, "producer") == {"linger_ms": 7, "max_batch_size": 1234}
    assert client_settings(kafka, "consumer") == {"fetch_max_wait_ms": 77}


async def test_the_clients_take_them(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = settings(
        monkeypatch,
        GYMSTREAM_KAFKA_PRODUCER_LINGER_MS="7",
        GYMSTREAM_KAFKA_CONSUMER_MAX_POLL_RECORDS="3",
    )
    producer = build_producer(kafka)
    consumer = build_consumer(kafka, "t", group_id=None, fetch_max_wait_ms=11)
    try:
        assert producer._message_accumulator._linger_time == pytest.approx(0.007)
        assert consumer._max_poll_records == 3
        assert consumer._fetch_max_wait_ms == 11  # the call site's own argument wins
    finally:
        await producer.stop()
        await consumer.stop()


def test_a_properties_file_reaches_each_kind_that_knows_a_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        "# Kafka's client properties\n"
        "linger.ms=20\n"
        "session.timeout.ms : 30000\n"
        "sasl.kerberos.service.name=kafka\n"
        "consumer.max.poll.records=5\n"
        "! another comment\n"
    )
    kafka = settings(
        monkeypatch,
        GYMSTREAM_KAFKA_CONFIG_FILE=str(path),
        GYMSTREAM_KAFKA_PRODUCER_LINGER_MS="3",  # a variable wins over the file
    )
    assert client_settings(kafka, "producer") == {
        "linger_ms": 3,
        "sasl_kerberos_service_name": "kafka",
    }
    assert client_settings(kafka, "consumer") == {
        "session_timeout_ms": 30000,
        "sasl_kerberos_service_name": "kafka",
        "max_poll_records": 5,
    }
    assert client_options(kafka)["sasl_kerberos_service_name"] == "kafka"  # admin clients too
    assert "linger_ms" not in client_options(kafka)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"GYMSTREAM_KAFKA_PRODUCER_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION": "1"},
            "Kafka setting max.in.flight.requests.per.connection "
            "(GYMSTREAM_KAFKA_PRODUCER_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION): aiokafka's "
            "producer client has no such setting",
        ),
        (
            {"GYMSTREAM_KAFKA_CONSUMER_LINGER_MS": "1"},
            "Kafka setting linger.ms (GYMSTREAM_KAFKA_CONSUMER_LINGER_MS): aiokafka's consumer",
        ),
        (
            {"GYMSTREAM_KAFKA_PRODUCER_LINGER_MS": "soon"},
            "Kafka setting linger.ms='soon' (GYMSTREAM_KAFKA_PRODUCER_LINGER_MS): expected a "
            "whole number",
        ),
        ({"GYMSTREAM_KAFKA_PRODUCER_ACKS": "1"}, "gymstream needs acks=all"),
        (
            {"GYMSTREAM_KAFKA_CONSUMER_ENABLE_AUTO_COMMIT": "true"},
            "gymstream commits offsets itself",
        ),
        ({"GYMSTREAM_KAFKA_CONSUMER_GROUP_ID": "mine"}, "names its consumer groups itself"),
    ],
)
def test_a_setting_aiokafka_cannot_take_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    kafka = settings(monkeypatch, **variables)
    with pytest.raises(ConfigError) as info:
        check(kafka)
    assert message in str(info.value)


def test_an_unknown_name_in_the_file_names_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "client.properties"
    path.write_text("linger.ms=5\nretries=3\n")
    kafka = settings(monkeypatch, GYMSTREAM_KAFKA_CONFIG_FILE=str(path))
    with pytest.raises(ConfigError) as info:
        check(kafka)
    assert f"Kafka setting retries ({path}): no aiokafka client has such a setting" in str(
        info.value
    )


def test_a_line_without_a_value_names_file_and_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "client.properties"
    path.write_text("linger.ms=5\njust-a-word\n")
    with pytest.raises(ValueError, match=rf"{path}:2: expected key=value"):
        settings(monkeypatch, GYMSTREAM_KAFKA_CONFIG_FILE=str(path))
