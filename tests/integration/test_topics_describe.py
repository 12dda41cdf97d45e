"""`gymstream topics list|describe` against the real broker; pass-through settings reach it."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from kafka_helpers import NameFactory, create_topic, make_producer
from pipeline_helpers import cli_env, gymstream

from gymstream.kafka.describe import describe_topic, list_topics

pytestmark = pytest.mark.kafka


async def _fill(bootstrap: str, topic: str, per_partition: list[int]) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for partition, count in enumerate(per_partition):
            for n in range(count):
                await producer.send_and_wait(topic, b"m%d" % n, partition=partition)
    finally:
        await producer.stop()


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


async def test_describe_shows_partitions_configs_offsets_and_group_lag(
    kafka_bootstrap: str, unique_name: NameFactory
) -> None:
    prefix = unique_name("desc")
    topic, group = f"{prefix}.tasks.a", f"{prefix}-worker-a"
    await create_topic(kafka_bootstrap, topic, partitions=3, config={"retention.ms": "3600000"})
    await create_topic(kafka_bootstrap, f"{prefix}.results")
    await _fill(kafka_bootstrap, topic, [4, 2, 0])
    await _commit(kafka_bootstrap, group, {TopicPartition(topic, 0): 3})
    options = {"bootstrap_servers": kafka_bootstrap}

    listed = await list_topics(options, f"{prefix}.")
    assert [(t.name, len(t.partitions), t.messages) for t in listed] == [
        (f"{prefix}.results", 1, 0),
        (topic, 3, 6),
    ]

    state = await describe_topic(options, topic)
    assert [(p.partition, p.start_offset, p.end_offset) for p in state.partitions] == [
        (0, 0, 4),
        (1, 0, 2),
        (2, 0, 0),
    ]
    assert all(p.leader >= 0 and p.in_sync == p.replicas for p in state.partitions)
    assert state.configs["retention.ms"] == "3600000"
    (lagging,) = state.groups
    assert lagging.group == group
    assert lagging.committed == {0: 3, 1: None, 2: None}
    assert lagging.lag == {0: 1, 1: 2, 2: 0}
    assert lagging.total_lag == 3


def test_the_cli_prints_them_and_takes_kafka_settings_by_their_names(kafka_bootstrap: str) -> None:
    env = cli_env(kafka_bootstrap, GYMSTREAM_KAFKA_PRODUCER_LINGER_MS="2")
    prefix = env["GYMSTREAM_TOPIC_PREFIX"]
    applied = gymstream("topics", "apply", "--agent", "a", env=env)
    assert applied.returncode == 0, applied.stderr
    listed = gymstream("topics", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    names = [t["name"] for t in json.loads(listed.stdout)]
    assert names == sorted(f"{prefix}.{n}" for n in ("failures", "results", "runs", "tasks.a"))
    shown = gymstream("topics", "describe", f"{prefix}.results", env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"topic {prefix}.results:" in shown.stdout
    assert "consumer groups: none has committed offsets on this topic" in shown.stdout
    missing = gymstream("topics", "describe", f"{prefix}.nope", env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: topic {prefix}.nope does not exist (`gymstream topics list` shows the topics)"
    ]
    bad = gymstream(
        "topics", "list", env={**env, "GYMSTREAM_KAFKA_CONSUMER_MAX_IN_FLIGHT_REQUESTS": "1"}
    )
    assert bad.returncode == 2
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith(
        "error: Kafka setting max.in.flight.requests (GYMSTREAM_KAFKA_CONSUMER_MAX_IN_FLIGHT_"
        "REQUESTS): aiokafka's consumer client has no such setting"
    )
