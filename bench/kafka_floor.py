"""Kafka's floor (a child process of the bench): raw produce, then consume, of one message size.

``python -m bench.kafka_floor --bootstrap B --topic T --size BYTES --count M [--partitions 12]``
prints one JSON object. It uses gymstream's own client builders (``gymstream.kafka.clients``:
aiokafka, acks=all, idempotent, linger 5 ms, no compression; consumer read_committed), sends
round-robin over the partitions in awaited windows of 4096 as ``gymstream.produce.producer`` does,
then reads the topic back from the beginning without a group. CPU is this process's own over
each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gymstream.kafka.clients import build_consumer, build_producer
from gymstream.settings import KafkaSettings

_WINDOW = 4096


def cpu_s() -> float:
    """This process's CPU time (user + system), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _phase(count: int, size: int, elapsed: float, cpu: float) -> dict[str, float]:
    return {
        "elapsed_s": elapsed,
        "rate": count / elapsed,
        "mib_s": count * size / elapsed / 2**20,
        "cpu_us_per_msg": cpu / count * 1e6,
    }


async def send_all(
    producer: Any, topic: str, messages: Iterable[tuple[bytes, bytes, int | None]]
) -> None:
    """Send (key, value, partition) messages in awaited windows, as the producer command does."""
    pending: list[asyncio.Future[Any]] = []
    for key, value, partition in messages:
        pending.append(await producer.send(topic, value, key=key, partition=partition))
        if len(pending) >= _WINDOW:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def read_back(kafka: KafkaSettings, topic: str, partitions: int, count: int) -> None:
    """Read ``count`` messages of ``topic`` from the beginning, without a group."""
    consumer = build_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(messages) for messages in batches.values())
    finally:
        await consumer.stop()


async def run(bootstrap: str, topic: str, size: int, count: int, partitions: int) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap=bootstrap, compression="none")  # the raw floor
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=30_000)
    finally:
        await admin.close()

    value = (b'{"bench":"' + b"x" * size)[: size - 2] + b'"}'
    messages = (
        (f"bench-run/example_single_tool_call_simple_agent/{i}/0".encode(), value, i % partitions)
        for i in range(count)
    )
    producer = build_producer(kafka)
    await producer.start()
    try:
        cpu0, t0 = cpu_s(), time.perf_counter()
        await send_all(producer, topic, messages)
        produced = _phase(count, size, time.perf_counter() - t0, cpu_s() - cpu0)
    finally:
        await producer.stop()

    cpu0, t0 = cpu_s(), time.perf_counter()
    await read_back(kafka, topic, partitions, count)
    consumed = _phase(count, size, time.perf_counter() - t0, cpu_s() - cpu0)
    return {
        "size": size,
        "count": count,
        "partitions": partitions,
        "produce": produced,
        "consume": consumed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True, help="a new topic name")
    parser.add_argument("--size", type=int, required=True, help="message value bytes")
    parser.add_argument("--count", type=int, required=True, help="messages")
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args()
    figures = asyncio.run(run(args.bootstrap, args.topic, args.size, args.count, args.partitions))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
