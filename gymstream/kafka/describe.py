"""What the cluster holds: topics, partitions, configs, offsets, consumer groups and their lag.

The admin queries behind ``gymstream topics list|describe`` (read-only; nothing is created,
changed or committed). Offsets are the high watermarks (what ``kafka-consumer-groups`` calls the
log end offset); a group's lag on a partition is that minus the group's committed offset (the
whole partition when it has committed none there). Configs are those set on the topic itself
(Kafka's ``DYNAMIC_TOPIC_CONFIG``), as ``kafka-configs --describe`` shows them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gymstream.errors import ConfigError

__all__ = ["GroupLag", "PartitionState", "TopicState", "describe_topic", "list_topics"]

_TOPIC_CONFIG_SOURCE = 1  # DescribeConfigs' config_source: set on the topic itself
_PARALLEL_QUERIES = 16  # groups asked at once (a cluster may hold thousands)


@dataclass(frozen=True)
class PartitionState:
    """One partition: where it lives and which offsets it holds."""

    partition: int
    leader: int
    replicas: list[int]
    in_sync: list[int]
    start_offset: int
    end_offset: int


@dataclass(frozen=True)
class GroupLag:
    """A consumer group that has committed offsets on the topic, and how far behind it is."""

    group: str
    state: str
    members: int
    committed: dict[int, int | None]  # partition -> committed offset (None: none yet)
    lag: dict[int, int]  # partition -> end offset - committed (or - start when none)

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


@dataclass(frozen=True)
class TopicState:
    """A topic, as ``topics describe`` shows it (``list`` fills partitions only)."""

    name: str
    partitions: list[PartitionState]
    configs: dict[str, str] = field(default_factory=dict)
    groups: list[GroupLag] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(p.end_offset - p.start_offset for p in self.partitions)


_LATEST, _EARLIEST = -1, -2  # ListOffsets' special timestamps


async def _offsets(admin: Any, metadata: list[Any]) -> tuple[dict[Any, int], dict[Any, int]]:
    """(start, end) offset of every partition in ``metadata``: one ListOffsets request per
    leader and kind (a group-less consumer asks topic by topic: a minute for 600 topics)."""
    from aiokafka import TopicPartition
    from aiokafka.protocol.offset import OffsetRequest

    by_leader: dict[int, dict[str, list[int]]] = {}
    for meta in metadata:
        for part in meta["partitions"]:
            on_leader = by_leader.setdefault(part.get("leader", -1), {})
            on_leader.setdefault(meta["topic"], []).append(part["partition"])
    starts: dict[Any, int] = {}
    ends: dict[Any, int] = {}
    for leader, topics in by_leader.items():
        if leader < 0:
            continue  # no leader now: its offsets stay unknown (0)
        for into, when in ((starts, _EARLIEST), (ends, _LATEST)):
            request = OffsetRequest(
                -1, 0, [(t, [(p, when) for p in ps]) for t, ps in topics.items()]
            )
            # the admin client's own connection (aiokafka has no public ListOffsets on it)
            response = await admin._client.send(leader, request)
            for topic, parts in response.topics:
                for partition, error, _timestamp, offset in parts:
                    if error == 0:
                        into[TopicPartition(topic, partition)] = offset
    return starts, ends


def _partitions(meta: Mapping[str, Any], starts: Any, ends: Any) -> list[PartitionState]:
    from aiokafka import TopicPartition

    out = []
    for part in sorted(meta["partitions"], key=lambda p: p["partition"]):
        tp = TopicPartition(meta["topic"], part["partition"])
        out.append(
            PartitionState(
                partition=part["partition"],
                leader=part.get("leader", -1),
                replicas=list(part.get("replicas", [])),
                in_sync=list(part.get("isr", [])),
                start_offset=starts.get(tp, 0),
                end_offset=ends.get(tp, 0),
            )
        )
    return out


async def list_topics(options: Mapping[str, Any], prefix: str = "") -> list[TopicState]:
    """Every topic whose name starts with ``prefix`` (internal ones never), with partitions."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        names = sorted(n for n in await admin.list_topics() if n.startswith(prefix))
        names = [n for n in names if not n.startswith("__")]
        metadata = await admin.describe_topics(names) if names else []
        metadata = [m for m in metadata if m.get("error_code", 0) == 0]
        starts, ends = await _offsets(admin, metadata)
    finally:
        await admin.close()
    found = [TopicState(m["topic"], _partitions(m, starts, ends)) for m in metadata]
    return sorted(found, key=lambda t: t.name)


async def _groups(admin: Any, topic: TopicState) -> list[GroupLag]:
    """The groups with committed offsets on ``topic``, their state and lag."""
    listed = sorted(group for group, _ in await admin.list_consumer_groups())
    limit = asyncio.Semaphore(_PARALLEL_QUERIES)

    async def committed_on_topic(group: str) -> dict[int, int | None]:
        async with limit:
            offsets = await admin.list_consumer_group_offsets(group)
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic.name}

    answers = await asyncio.gather(*(committed_on_topic(g) for g in listed))
    found = [(group, mine) for group, mine in zip(listed, answers, strict=True) if mine]
    if not found:
        return []
    states: dict[str, tuple[str, int]] = {}
    for response in await admin.describe_consumer_groups([g for g, _ in found]):
        for described in response.groups:  # (error_code, group, state, protocol_type, ...)
            states[described[1]] = (described[2], len(described[5]))
    out = []
    for group, mine in found:
        committed = {p.partition: mine.get(p.partition) for p in topic.partitions}
        lag = {
            p.partition: p.end_offset - max(p.start_offset, committed[p.partition] or 0)
            for p in topic.partitions
        }
        state, members = states.get(group, ("Unknown", 0))
        out.append(GroupLag(group, state, members, committed, lag))
    return out


async def describe_topic(options: Mapping[str, Any], name: str) -> TopicState:
    """Partitions, offsets, the configs set on the topic, and every group reading it with its
    lag; ``ConfigError`` when the topic does not exist."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        if name not in await admin.list_topics():
            raise ConfigError(
                f"topic {name} does not exist (`gymstream topics list` shows the topics)"
            )
        (meta,) = await admin.describe_topics([name])
        starts, ends = await _offsets(admin, [meta])
        configs: dict[str, str] = {}
        resource = ConfigResource(ConfigResourceType.TOPIC, name)
        for response in await admin.describe_configs([resource]):
            for res in response.resources:  # (error, message, type, name, configs)
                for entry in res[4]:  # (name, value, read_only, source, sensitive, synonyms)
                    if entry[3] == _TOPIC_CONFIG_SOURCE:
                        configs[entry[0]] = entry[1]
        topic = TopicState(name, _partitions(meta, starts, ends), dict(sorted(configs.items())))
        return TopicState(topic.name, topic.partitions, topic.configs, await _groups(admin, topic))
    finally:
        await admin.close()
