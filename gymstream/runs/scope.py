"""A run's namespace: its layout, and dropping a private namespace's task topics.

Why a namespace is a set of task topics (and not a filter): Kafka hands a consumer group whole
partitions, never single messages, so a task in a topic that a foreign group reads WILL be
taken by it; only another topic keeps it out of reach. docs/scopes.md has the design, its cost
(one task topic per agent per private run) and how private namespaces are cleaned: ``collect``
drops its own when its run is complete (``drop_private_scope``), ``gymstream runs cancel`` and
``gymstream runs delete`` drop an interrupted or finished run's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from gymstream.errors import ConfigError
from gymstream.kafka.topics import SHARED_NAMESPACE, TopicLayout, private_namespace
from gymstream.wire.records import RunManifest

__all__ = ["drop_private_scope", "is_private", "run_layout", "scope_topics"]

log = logging.getLogger("gymstream.runs.scope")
_UNKNOWN_TOPIC = 3


def run_layout(layout: TopicLayout, manifest: RunManifest) -> TopicLayout:
    """The layout the run's tasks live in: its manifest's namespace (an older producer's
    manifest names none: the shared one)."""
    return layout.scoped(manifest.namespace or SHARED_NAMESPACE)


def is_private(run_id: str, namespace: str) -> bool:
    """Whether ``namespace`` is the run's own private one (no other run can use it)."""
    return namespace == private_namespace(run_id)


def scope_topics(layout: TopicLayout, topics: list[str]) -> list[str]:
    """Of ``topics``, the task topics of ``layout``'s (non-shared) namespace."""
    if layout.shared:
        return []
    start = f"{layout.scope_prefix}tasks."
    return sorted(t for t in topics if t.startswith(start))


async def drop_private_scope(
    kafka_options: Mapping[str, Any], layout: TopicLayout, run_id: str
) -> list[str]:
    """Delete the task topics of ``run_id``'s private namespace; the names deleted.

    What waited there is gone for good: call it only for a complete run (nothing waits) or an
    explicit cancel. Deleting a topic also removes its committed offsets, so the namespace's
    worker groups, left empty, expire with them. Raises ConfigError for any other namespace:
    the shared one, or a named one, may have workers and other runs.
    """
    if not is_private(run_id, layout.namespace):
        raise ConfigError(
            f"namespace {layout.namespace!r} is not run {run_id}'s private one: its task topics "
            "are shared with other runs and are never deleted by gymstream"
        )
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka_options)
    await admin.start()
    try:
        names = scope_topics(layout, list(await admin.list_topics()))
        if not names:
            return []
        for name in names:  # a live collect's workers would lose their topic under them
            group = (
                f"{layout.scope_prefix}worker.{name.removeprefix(layout.scope_prefix + 'tasks.')}"
            )
            members = await _members(admin, group)
            if members:
                raise ConfigError(
                    f"run {run_id} is running: {members} worker(s) in {group}; stop its collect "
                    "first (SIGTERM), then cancel"
                )
        response = await admin.delete_topics(names, timeout_ms=30_000)
        deleted = []
        for name, code, *_ in response.topic_error_codes:
            if code == 0:
                deleted.append(name)
            elif code != _UNKNOWN_TOPIC:  # already gone (a concurrent drop): fine
                raise ConfigError(f"cannot delete topic {name}: error {code}")
        await _wait_until_gone(admin, names)
        log.info("dropped %d task topics of namespace %s", len(deleted), layout.namespace)
        return sorted(deleted)
    finally:
        await admin.close()


async def _wait_until_gone(admin: Any, names: list[str], timeout_s: float = 30.0) -> None:
    """Wait until the metadata no longer shows the topics (a deletion spreads to the brokers
    after the controller's answer; a resume creating them again must not find them dying)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while set(names) & set(await admin.list_topics()):
        if loop.time() > deadline:
            raise ConfigError(
                f"topics still listed {timeout_s:.0f} s after their deletion: {names}"
            )
        await asyncio.sleep(0.1)


async def _members(admin: Any, group: str) -> int:
    """How many members the group has now (one group per request: see status/facts._group)."""
    [response] = await admin.describe_consumer_groups([group])
    # DescribeGroupsResponse groups: (error_code, group, state, protocol_type, protocol, members)
    return sum(len(g[5]) for g in response.groups if g[1] == group)
