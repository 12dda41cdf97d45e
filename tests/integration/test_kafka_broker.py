"""The broker behaves as gymstream relies on.

A consumer group splits partitions, each message arrives once and commits land; acknowledged
messages (acks=all, min.insync.replicas=2) survive a broker stopping mid-stream.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from fixtures.topics import (
    NameFactory,
    committed_offsets,
    create_topic,
    end_offsets,
    make_producer,
    read_all,
    wait_until,
)

from gymstream.localkafka import Cluster

pytestmark = pytest.mark.kafka

MESSAGES = 10_000


async def test_group_of_two_splits_partitions_and_receives_each_message_once(
    kafka_bootstrap: str, unique_name: NameFactory
) -> None:
    topic, group = unique_name("split"), unique_name("group")
    await create_topic(kafka_bootstrap, topic, partitions=3)
    consumers = [
        AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            heartbeat_interval_ms=300,
        )
        for _ in range(2)
    ]
    for consumer in consumers:
        await consumer.start()
    try:
        # Produce only once the group is stable, so no rebalance can hand a message out twice.
        def split() -> bool:
            first, second = (c.assignment() for c in consumers)
            return bool(first) and bool(second) and len(first | second) == 3

        await wait_until(split, 30, "both consumers to get partitions")

        producer = make_producer(kafka_bootstrap)
        await producer.start()
        try:
            sends = [
                await producer.send(topic, key=str(i).encode(), value=str(i).encode())
                for i in range(MESSAGES)
            ]
            await asyncio.wait_for(asyncio.gather(*sends), 60)
        finally:
            await producer.stop()

        received: list[list[tuple[int, int]]] = [[], []]  # per consumer: (partition, value)

        async def consume(index: int) -> None:
            consumer = consumers[index]
            while sum(map(len, received)) < MESSAGES:
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    received[index].extend((tp.partition, int(r.value or b"-1")) for r in records)
                if batches:
                    await consumer.commit()

        await asyncio.wait_for(asyncio.gather(consume(0), consume(1)), 90)
        assignments = [c.assignment() for c in consumers]
    finally:
        for consumer in consumers:
            await consumer.stop()

    parts = [{p for p, _ in got} for got in received]
    assert parts[0], f"the first consumer got no messages: {parts}"
    assert parts[1], f"the second consumer got no messages: {parts}"
    assert not parts[0] & parts[1], f"both consumers read partitions {parts[0] & parts[1]}"
    assert parts[0] <= {tp.partition for tp in assignments[0]}
    assert parts[1] <= {tp.partition for tp in assignments[1]}
    values = sorted(v for got in received for _, v in got)
    assert values == list(range(MESSAGES))  # every message, none twice

    ends = await end_offsets(kafka_bootstrap, topic)
    assert sum(ends.values()) == MESSAGES
    assert await committed_offsets(kafka_bootstrap, group, topic) == ends


@pytest.mark.slow
@pytest.mark.faults
async def test_acknowledged_messages_survive_a_broker_stop(
    kafka_cluster: Cluster, unique_name: NameFactory
) -> None:
    bootstrap = kafka_cluster.bootstrap
    topic = unique_name("durable")
    await create_topic(
        bootstrap, topic, partitions=3, replication_factor=3, config={"min.insync.replicas": "2"}
    )
    acked: list[int] = []
    acked_after_stop: list[int] = []
    failed = 0
    producer = make_producer(bootstrap, request_timeout_ms=20_000, retry_backoff_ms=100)
    await producer.start()
    try:
        await producer.partitions_for(topic)
        victim = producer.client.cluster.leader_for_partition(TopicPartition(topic, 0))
        assert victim in kafka_cluster.node_ids

        next_value = 0

        async def produce_batch(size: int = 100) -> list[int]:
            nonlocal next_value, failed
            values = list(range(next_value, next_value + size))
            next_value += size
            sends = [await producer.send(topic, value=str(v).encode()) for v in values]
            results = await asyncio.gather(*sends, return_exceptions=True)
            failed += sum(isinstance(r, KafkaError) for r in results)
            unexpected = [r for r in results if isinstance(r, BaseException)]
            assert all(isinstance(r, KafkaError) for r in unexpected), unexpected
            return [v for v, r in zip(values, results, strict=True) if not isinstance(r, Exception)]

        while len(acked) < 1_000:
            acked += await produce_batch()
        stopping = asyncio.create_task(asyncio.to_thread(kafka_cluster.stop_broker, victim))
        while not stopping.done():
            acked += await produce_batch()
        await stopping
        assert not kafka_cluster.is_running(victim)
        while len(acked_after_stop) < 1_000:
            acked_after_stop += await asyncio.wait_for(produce_batch(), 60)
    finally:
        await producer.stop()

    consumed = await read_all(bootstrap, topic)
    everything = {int(v) for v in consumed}
    lost = set(acked + acked_after_stop) - everything
    assert not lost, f"{len(lost)} acknowledged messages lost (failed sends: {failed})"
    assert len(consumed) == len(everything), "the idempotent producer wrote duplicates"

    await asyncio.to_thread(kafka_cluster.start_broker, victim)
    assert kafka_cluster.is_running(victim)
