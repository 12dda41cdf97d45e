"""Rollouts of a run still waiting in its task topics: what a resume must not publish again.

A resume publishes what the output lacks; before, that included tasks still waiting in the task
topics (not yet taken by a worker, or taken and not yet committed), which then ran twice (2,914
duplicates dropped while 3,044 were missing). Per agent this reads each task partition from the
worker group's committed offset to its end (without joining the group: ``assign`` only, never a
commit) and keeps the rollout ids of the run. Memory: the ids of this run's waiting tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import msgspec
from aiokafka import TopicPartition

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, topic_partitions
from gymstream.kafka.topics import TopicLayout
from gymstream.settings import KafkaSettings

__all__ = ["waiting_rollouts"]


class _Id(msgspec.Struct):
    run_id: str
    rollout_id: str


_DECODE_ID = msgspec.json.Decoder(_Id)


async def waiting_rollouts(
    kafka: KafkaSettings, layout: TopicLayout, agents: Iterable[str], run_id: str
) -> set[str]:
    """Rollout ids of ``run_id`` in the agents' task topics past their workers' commits."""
    found: set[str] = set()
    for agent in agents:
        found |= await _waiting(kafka, layout, agent, run_id)
    return found


async def _waiting(kafka: KafkaSettings, layout: TopicLayout, agent: str, run_id: str) -> set[str]:
    consumer = build_consumer(kafka, group_id=layout.worker_group(agent))
    found: set[str] = set()
    try:
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, layout.tasks(agent))
        except ConfigError:
            return found  # no topic: nothing waits there
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        left: dict[TopicPartition, int] = {}
        for tp in tps:
            start = await consumer.committed(tp)
            if start is None:
                await consumer.seek_to_beginning(tp)
                start = await consumer.position(tp)
            else:
                consumer.seek(tp, start)
            if start < ends[tp]:
                left[tp] = ends[tp]
        while left:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 60)
            for tp, messages in batch.items():
                for message in messages:
                    try:
                        task = _DECODE_ID.decode(message.value or b"")
                    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                        continue
                    if task.run_id == run_id:
                        found.add(task.rollout_id)
                if messages and messages[-1].offset + 1 >= left.get(tp, 0):
                    left.pop(tp, None)
            for tp in list(left):  # a partition whose last records are gone or transactional
                if await consumer.position(tp) >= left[tp]:
                    left.pop(tp)
    finally:
        await consumer.stop()
    return found
