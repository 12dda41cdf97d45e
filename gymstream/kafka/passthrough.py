"""Kafka client settings in Kafka's own dotted names, mapped onto aiokafka's arguments.

Kafka users know ``linger.ms``, ``batch.size``, ``sasl.kerberos.service.name``. They reach every
client gymstream builds from three places (``gymstream.settings.KafkaSettings``):

- ``GYMSTREAM_KAFKA_PRODUCER_<NAME>`` / ``GYMSTREAM_KAFKA_CONSUMER_<NAME>``: one setting of that
  kind of client (``_`` is ``.``: ``GYMSTREAM_KAFKA_PRODUCER_LINGER_MS=5`` is ``linger.ms=5``);
- a properties file (``--kafka-config FILE`` / ``GYMSTREAM_KAFKA_CONFIG_FILE``): a plain name
  goes to every client that knows it (producer, consumer, admin), ``producer.<name>`` /
  ``consumer.<name>`` to that kind only; a variable wins over the file.

A name aiokafka has no argument for (``max.in.flight.requests.per.connection``, ``retries``...),
a value of the wrong type, or a setting gymstream must own (``group.id``, ``enable.auto.commit``,
``acks`` other than ``all``: they carry the "nothing lost, nothing doubled" guarantee) is one
``ConfigError`` naming the setting and where it came from. ``check`` runs them all at startup.
Precedence in a client: gymstream's defaults < these settings < a call site's own arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from gymstream.errors import ConfigError
from gymstream.settings import KafkaSettings

__all__ = ["check", "client_settings"]

Kind = Literal["producer", "consumer", "admin"]
_Convert = Callable[[str], Any]


def _int(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError("expected true or false")
    return lowered == "true"


def _acks(value: str) -> str:
    if value.strip().lower() not in ("all", "-1"):
        raise ValueError(
            "gymstream needs acks=all: a result counts as delivered only when every in-sync "
            "replica has it"
        )
    return "all"


def _compression(value: str) -> str | None:
    lowered = value.strip().lower()
    if lowered not in ("none", "gzip", "snappy", "lz4", "zstd"):
        raise ValueError("expected none, gzip, snappy, lz4 or zstd")
    return None if lowered == "none" else lowered


def _text(value: str) -> str:
    return value


_COMMON: dict[str, tuple[str, _Convert]] = {
    "client.id": ("client_id", _text),
    "request.timeout.ms": ("request_timeout_ms", _int),
    "metadata.max.age.ms": ("metadata_max_age_ms", _int),
    "retry.backoff.ms": ("retry_backoff_ms", _int),
    "connections.max.idle.ms": ("connections_max_idle_ms", _int),
    "security.protocol": ("security_protocol", _text),
    "sasl.mechanism": ("sasl_mechanism", _text),
    "sasl.kerberos.service.name": ("sasl_kerberos_service_name", _text),
    "sasl.kerberos.domain.name": ("sasl_kerberos_domain_name", _text),
    "sasl.username": ("sasl_plain_username", _text),
    "sasl.password": ("sasl_plain_password", _text),
}
_PRODUCER: dict[str, tuple[str, _Convert]] = {
    "acks": ("acks", _acks),
    "linger.ms": ("linger_ms", _int),
    "batch.size": ("max_batch_size", _int),
    "max.request.size": ("max_request_size", _int),
    "compression.type": ("compression_type", _compression),
    "enable.idempotence": ("enable_idempotence", _bool),
    "transaction.timeout.ms": ("transaction_timeout_ms", _int),
}
_CONSUMER: dict[str, tuple[str, _Convert]] = {
    "fetch.max.wait.ms": ("fetch_max_wait_ms", _int),
    "fetch.min.bytes": ("fetch_min_bytes", _int),
    "fetch.max.bytes": ("fetch_max_bytes", _int),
    "max.partition.fetch.bytes": ("max_partition_fetch_bytes", _int),
    "max.poll.records": ("max_poll_records", _int),
    "max.poll.interval.ms": ("max_poll_interval_ms", _int),
    "session.timeout.ms": ("session_timeout_ms", _int),
    "heartbeat.interval.ms": ("heartbeat_interval_ms", _int),
    "rebalance.timeout.ms": ("rebalance_timeout_ms", _int),
    "auto.offset.reset": ("auto_offset_reset", _text),
    "isolation.level": ("isolation_level", _text),
    "check.crcs": ("check_crcs", _bool),
    "exclude.internal.topics": ("exclude_internal_topics", _bool),
}
_TABLES: dict[Kind, dict[str, tuple[str, _Convert]]] = {
    "producer": {**_COMMON, **_PRODUCER},
    "consumer": {**_COMMON, **_CONSUMER},
    "admin": _COMMON,
}
_OWNED = {
    "bootstrap.servers": "set GYMSTREAM_KAFKA_BOOTSTRAP (or --bootstrap) instead",
    "group.id": "gymstream names its consumer groups itself (gymstream-worker-<agent>, ...)",
    "enable.auto.commit": "gymstream commits offsets itself, only after the output is acknowledged",
    "transactional.id": "gymstream's producers are idempotent, not transactional",
}


def _variable(kind: str, name: str) -> str:
    return f"GYMSTREAM_KAFKA_{kind.upper()}_{name.upper().replace('.', '_')}"


def _converted(kind: Kind, name: str, value: str, where: str) -> tuple[str, Any]:
    if name in _OWNED:
        raise ConfigError(f"Kafka setting {name} ({where}): {_OWNED[name]}")
    entry = _TABLES[kind].get(name)
    if entry is None:
        raise ConfigError(
            f"Kafka setting {name} ({where}): aiokafka's {kind} client has no such setting; "
            f"the ones gymstream passes on: {', '.join(sorted(_TABLES[kind]))}"
        )
    argument, convert = entry
    try:
        return argument, convert(value)
    except ValueError as exc:
        raise ConfigError(f"Kafka setting {name}={value!r} ({where}): {exc}") from None


def _from_file(kind: Kind, properties: Mapping[str, str], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    known = set(_COMMON) | set(_PRODUCER) | set(_CONSUMER) | set(_OWNED)
    for key, value in properties.items():
        scope, _, rest = key.partition(".")
        if scope in ("producer", "consumer") and rest:
            if scope == kind:
                argument, converted = _converted(kind, rest, value, path)
                out[argument] = converted
            continue
        if key not in known:  # no client knows it: a typo or an unsupported setting
            raise ConfigError(
                f"Kafka setting {key} ({path}): no aiokafka client has such a setting; the ones "
                f"gymstream passes on: {', '.join(sorted(known - set(_OWNED)))}"
            )
        if key in _TABLES[kind] or key in _OWNED:
            argument, converted = _converted(kind, key, value, path)
            out[argument] = converted
    return out


def client_settings(settings: KafkaSettings, kind: Kind) -> dict[str, Any]:
    """aiokafka keyword arguments of the pass-through settings for one kind of client."""
    out: dict[str, Any] = {}
    if settings.config_file:
        out.update(_from_file(kind, settings.properties, settings.config_file))
    if kind != "admin":
        variables = settings.producer if kind == "producer" else settings.consumer
        for name, value in variables.items():
            argument, converted = _converted(kind, name, value, _variable(kind, name))
            out[argument] = converted
    return out


def check(settings: KafkaSettings) -> None:
    """Raise the ConfigError of the first pass-through setting no client can take (startup)."""
    for kind in ("producer", "consumer", "admin"):
        client_settings(settings, kind)
