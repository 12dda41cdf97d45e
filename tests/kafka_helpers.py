"""Helpers for tests against a real broker: create topics, read end and committed offsets.

Plain async functions (not fixtures) so any test can import them:
``from kafka_helpers import create_topic``. Every call has a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = [
    "NameFactory",
    "committed_offsets",
    "create_topic",
    "end_offsets",
    "make_producer",
    "partitions_of",
    "read_all",
    "wait_until",
]


class NameFactory(Protocol):
    """The ``unique_name`` fixture: ``unique_name("tasks")`` -> "tasks-<test>-<8 hex>"."""

    def __call__(self, prefix: str = "t") -> str: ...


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], timeout_s: float, what: str, poll_s: float = 0.1
) -> None:
    """Poll ``check`` until it is true; AssertionError naming ``what`` after timeout_s."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)


async def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create a topic and wait until every partition has a leader (so producing succeeds)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        topic = NewTopic(name, partitions, replication_factor, topic_configs=config or {})
        await asyncio.wait_for(admin.create_topics([topic]), timeout_s)

        async def has_leaders() -> bool:
            described = await admin.describe_topics([name])
            parts = described[0].get("partitions", []) if described else []
            return len(parts) == partitions and all(p.get("leader", -1) >= 0 for p in parts)

        await wait_until(has_leaders, timeout_s, f"leaders for all partitions of {name}")
    finally:
        await admin.close()


def make_producer(bootstrap: str, **overrides: object) -> AIOKafkaProducer:
    """A producer with the project's safe defaults (acks=all, idempotence); not yet started."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def end_offsets(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """Partition -> log end offset (the offset the next message will get)."""
    partitions = await partitions_of(bootstrap, topic, timeout_s)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        offsets = await asyncio.wait_for(consumer.end_offsets(tps), timeout_s)
        return {tp.partition: int(offset) for tp, offset in offsets.items()}
    finally:
        await consumer.stop()


async def committed_offsets(
    bootstrap: str, group: str, topic: str, timeout_s: float = 30.0
) -> dict[int, int]:
    """Partition -> offset committed by ``group`` for ``topic`` (uncommitted ones left out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), timeout_s)
        return {
            tp.partition: int(meta.offset)
            for tp, meta in offsets.items()
            if tp.topic == topic and meta.offset >= 0
        }
    finally:
        await admin.close()


async def read_all(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[bytes]:
    """Every message value in ``topic`` from the start up to the current end offsets (no group)."""
    ends = await end_offsets(bootstrap, topic, timeout_s)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

        async def drain() -> None:
            positions = {tp: 0 for tp in tps}
            while any(positions[tp] < ends[tp.partition] for tp in tps):
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset < ends[tp.partition] and record.value is not None:
                            values.append(record.value)
                    if records:
                        positions[tp] = records[-1].offset + 1

        await asyncio.wait_for(drain(), timeout_s)
    finally:
        await consumer.stop()
    return values


async def list_topics(bootstrap: str) -> list[str]:
    """Every topic on the cluster, sorted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[int]:
    """The topic's partition ids, from a Metadata request (AssertionError if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await asyncio.wait_for(admin.describe_topics([topic]), timeout_s)
    finally:
        await admin.close()
    parts = described[0].get("partitions", []) if described else []
    assert parts, f"topic {topic} not found: {described}"
    return sorted(int(p["partition"]) for p in parts)


async def topic_config(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[str, str]:
    """The topic's configuration as the broker reports it (DescribeConfigs)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        described = await asyncio.wait_for(admin.describe_configs([resource]), timeout_s)
    finally:
        await admin.close()
    # resources: (error_code, error_message, resource_type, resource_name, configs)
    return {c[0]: c[1] for r in described for res in r.resources for c in res[4]}
