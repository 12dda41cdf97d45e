"""The text of ``gymstream topics list|describe``: plain aligned lines (and JSON), no logic."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from gymstream.kafka.describe import TopicState

__all__ = ["as_json", "describe_lines", "list_lines"]


def _ids(values: list[int]) -> str:
    return ",".join(str(v) for v in values) or "-"


def list_lines(topics: list[TopicState]) -> list[str]:
    """One line per topic: name, partitions, messages held."""
    if not topics:
        return ["no topics"]
    width = max(len(t.name) for t in topics)
    lines = [f"{'TOPIC':<{width}}  PARTITIONS  MESSAGES"]
    lines += [f"{t.name:<{width}}  {len(t.partitions):>10}  {t.messages:>8}" for t in topics]
    return lines


def describe_lines(topic: TopicState) -> list[str]:
    """The topic, its partitions, the configs set on it, and each group with its lag."""
    lines = [
        f"topic {topic.name}: {len(topic.partitions)} partitions, {topic.messages} messages",
        "  PARTITION  LEADER  REPLICAS  IN-SYNC  START-OFFSET  END-OFFSET",
    ]
    for p in topic.partitions:
        lines.append(
            f"  {p.partition:>9}  {p.leader:>6}  {_ids(p.replicas):>8}  {_ids(p.in_sync):>7}"
            f"  {p.start_offset:>12}  {p.end_offset:>10}"
        )
    lines.append("configs set on the topic:" if topic.configs else "configs: broker defaults")
    lines += [f"  {key}={value}" for key, value in topic.configs.items()]
    if not topic.groups:
        lines.append("consumer groups: none has committed offsets on this topic")
    for group in topic.groups:
        lines.append(
            f"group {group.group} ({group.state}, {group.members} members): lag {group.total_lag}"
        )
        lines.append("  PARTITION  COMMITTED  END-OFFSET  LAG")
        for p in topic.partitions:
            committed = group.committed.get(p.partition)
            shown = "-" if committed is None else str(committed)
            lines.append(
                f"  {p.partition:>9}  {shown:>9}  {p.end_offset:>10}  {group.lag[p.partition]:>3}"
            )
    return lines


def as_json(value: TopicState | list[TopicState]) -> str:
    """The same, as JSON (``--json``): field names as in ``gymstream.kafka.describe``."""

    def plain(topic: TopicState) -> dict[str, Any]:
        data = dataclasses.asdict(topic)
        data["messages"] = topic.messages
        for group, lagging in zip(data["groups"], topic.groups, strict=True):
            group["total_lag"] = lagging.total_lag
        return data

    shown = [plain(t) for t in value] if isinstance(value, list) else plain(value)
    return msgspec.json.format(msgspec.json.encode(shown), indent=2).decode()
