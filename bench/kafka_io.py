"""What the bench asks Kafka directly: is a consumer group ready, and what is in a topic.

- ``wait_groups_stable``: DescribeGroups until each group is Stable with its members, so a run
  starts only once every worker holds partitions and the sink has joined (no --verbose logs
  needed; with them the workers would log every HTTP request and slow down what is measured).
- ``read_topic``: every record of a topic from the beginning to its end, without a group.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DescribeGroupsRequest

from bench.procs import Child
from gymstream.kafka.clients import build_consumer
from gymstream.settings import KafkaSettings

__all__ = ["read_topic", "wait_groups_stable"]


class _DescribeGroups(DescribeGroupsRequest):  # type: ignore[misc]  # aiokafka is untyped
    """DescribeGroups limited to v0-v2: aiokafka 0.14 decodes a v3 answer with the v2 schema
    (v3 adds ``authorized_operations``), which fails as soon as a group has members, so
    ``AIOKafkaAdminClient.describe_consumer_groups`` cannot describe a live group."""


_DescribeGroups._CLASSES = DescribeGroupsRequest._CLASSES[:3]


async def wait_groups_stable(
    bootstrap: str, groups: dict[str, int], children: list[Child], timeout_s: float
) -> None:
    """Wait until each consumer group is Stable with its number of members (all assigned).

    Asked of the broker (DescribeGroups), so the workers need no --verbose: that would log every
    HTTP request (httpx at INFO) and slow down what is measured.
    """
    client = AIOKafkaClient(**KafkaSettings(bootstrap=bootstrap).client_options())
    await client.bootstrap()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            ready = True
            for group, members in groups.items():
                try:
                    node = await client.coordinator_lookup(CoordinationType.GROUP, group)
                    answer = (await client.send(node, _DescribeGroups([group]))).to_object()
                except KafkaError as exc:  # e.g. no coordinator yet on a fresh broker
                    if not exc.retriable:
                        raise
                    ready = False
                    continue
                found = answer["groups"][0]
                ready &= found["state"] == "Stable" and len(found["members"]) == members
            if ready:
                return
            for child in children:
                usage = child.poll()
                if usage is not None:
                    child.check(usage, " ".join(child.args[3:5]))
                    raise RuntimeError(f"{child.args[3:5]} ended before its group was stable")
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer groups not stable within {timeout_s:.0f} s")
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def read_topic(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every record of ``topic`` from the beginning to the current end (committed data)."""
    consumer = build_consumer(KafkaSettings(bootstrap=bootstrap), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        behind = [tp for tp in tps if end[tp] > 0]
        while behind:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batches.values():
                records.extend(messages)
            behind = [tp for tp in behind if await consumer.position(tp) < end[tp]]
        return records
    finally:
        await consumer.stop()
