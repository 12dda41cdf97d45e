"""The Kafka side of `gymstream status`: read the facts of each run (``report.RunFacts``).

One ``StatusProbe`` holds three clients for as long as it is open (``--watch`` refreshes
through the same ones): a ``RunsTail`` over the runs topic (manifests, the sinks'
``SinkProgress``, the trainer streams' positions), an admin client (each consumer group's
state, members and committed offsets: ``describe_consumer_groups``,
``list_consumer_group_offsets``) and an assign-only consumer that asks for log start and end
offsets. It never joins a group and never commits. Worker groups and topics are shared by
every run, so they are read once per refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, client_options, topic_partitions
from gymstream.kafka.topics import TopicLayout
from gymstream.runs.scope import run_layout
from gymstream.runs.tail import RunsTail
from gymstream.settings import KafkaSettings
from gymstream.status.report import GroupFacts, RunFacts, TopicOffsets, run_agents
from gymstream.wire.records import ModelOutageRecord, RunManifest

__all__ = ["StatusProbe", "UnknownRunError", "choose_runs", "live_outages"]


class UnknownRunError(ConfigError):
    """``--run-id`` names a run that has no manifest on the runs topic."""


def choose_runs(
    manifests: Iterable[RunManifest], run_id: str | None, limit: int, topic: str
) -> list[RunManifest]:
    """The runs to report: ``run_id`` alone, or the ``limit`` newest, newest first."""
    held = list(manifests)
    if run_id is not None:
        found = [m for m in held if m.run_id == run_id]
        if not found:
            raise UnknownRunError(
                f"no run '{run_id}' on {topic} ({len(held)} runs there; `gymstream status` "
                "lists them, check --topic-prefix)"
            )
        return found
    newest = sorted(held, key=lambda m: (m.created_ms, m.run_id), reverse=True)
    return newest[:limit]


def live_outages(
    outages: Iterable[ModelOutageRecord], namespace: str, groups: Mapping[str, GroupFacts]
) -> dict[str, ModelOutageRecord]:
    """Per agent of ``groups``, the earliest model outage of its workers in ``namespace``, while
    its worker group has members (a worker killed mid-outage leaves a record, not a member)."""
    found: dict[str, ModelOutageRecord] = {}
    for outage in sorted(outages, key=lambda o: o.down_since_ms):
        group = groups.get(outage.agent)
        if outage.namespace != namespace or group is None or not group.members:
            continue
        found.setdefault(outage.agent, outage)
    return found


class StatusProbe:
    """Reads the facts of runs from Kafka; an async context manager (``start`` / ``stop``)."""

    def __init__(self, kafka: KafkaSettings, layout: TopicLayout, *, timeout_s: float = 30.0):
        self.layout = layout
        self._timeout_s = timeout_s
        self._tail = RunsTail(kafka, layout)
        self._admin = AIOKafkaAdminClient(**client_options(kafka))
        self._offsets: AIOKafkaConsumer = build_consumer(kafka, group_id=None)
        self._started: list[Any] = []

    async def start(self) -> None:
        try:
            for client in (self._offsets, self._admin):
                self._started.append(client)  # before start: a failed start still closes it
                await client.start()
            await self._tail.start()
            self._started.append(self._tail)
            await self._tail.read_to_end(self._timeout_s)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        while self._started:
            client = self._started.pop()
            with contextlib.suppress(Exception):
                await (client.close() if client is self._admin else client.stop())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.stop()

    async def gather(self, run_id: str | None = None, limit: int = 20) -> list[RunFacts]:
        """The facts of the chosen runs (see ``choose_runs``), as of now."""
        while await self._tail.poll(timeout_ms=0):
            pass  # take what arrived since the last refresh
        tail = self._tail
        chosen = choose_runs(tail.manifests(), run_id, limit, self.layout.runs)
        sinks = {m.run_id: tail.sink_progress(m.run_id) for m in chosen}
        named = {m.run_id: run_agents(m, sinks[m.run_id]) for m in chosen}
        layouts = {m.run_id: run_layout(self.layout, m) for m in chosen}  # each in its namespace
        pairs = {(layouts[r].namespace, a) for r, agents in named.items() for a in agents}
        task_offsets, worker_groups = {}, {}
        for namespace, a in sorted(pairs):
            scoped = self.layout.scoped(namespace)
            task_offsets[namespace, a] = await self._topic_offsets(scoped.tasks(a))
            worker_groups[namespace, a] = await self._group(scoped.worker_group(a))
        layout = self.layout
        results = await self._topic_offsets(layout.results) or TopicOffsets(start={}, end={})
        failures = await self._topic_offsets(layout.failures) or TopicOffsets(start={}, end={})
        outages = tail.model_outages()
        found = []
        for manifest in chosen:
            mine = named[manifest.run_id]
            ns = layouts[manifest.run_id].namespace
            found.append(
                RunFacts(
                    manifest=manifest,
                    sink=sinks[manifest.run_id],
                    positions=tail.stream_positions(manifest.run_id),
                    sink_group=await self._group(layout.sink_group(manifest.run_id)),
                    worker_groups={a: worker_groups[ns, a] for a in mine},
                    task_offsets={a: task_offsets[ns, a] for a in mine},
                    task_topics={a: layouts[manifest.run_id].tasks(a) for a in mine},
                    results_topic=layout.results,
                    failures_topic=layout.failures,
                    results=results,
                    failures=failures,
                    outages=live_outages(outages, ns, {a: worker_groups[ns, a] for a in mine}),
                )
            )
        return found

    async def _topic_offsets(self, topic: str) -> TopicOffsets | None:
        """The topic's log start and end offsets; None when it does not exist."""
        try:
            tps = await topic_partitions(self._offsets, topic)
        except ConfigError:
            return None
        starts = await self._offsets.beginning_offsets(tps)
        ends = await self._offsets.end_offsets(tps)
        return TopicOffsets(
            start={tp.partition: o for tp, o in starts.items()},
            end={tp.partition: o for tp, o in ends.items()},
        )

    async def group_facts(self, group_id: str) -> GroupFacts:
        """One consumer group's state, members and committed offsets (see ``_group``)."""
        return await self._group(group_id)

    async def _group(self, group_id: str) -> GroupFacts:
        """The group's state, members and committed offsets (a group never seen is "Dead").

        One group per request, on purpose: aiokafka 0.14 reads a DescribeGroups v3 answer with
        the v2 schema, which lacks v3's ``authorized_operations`` after each group's members;
        for one group those 4 bytes come last and go unread, but a second group in the same
        answer would be read from the wrong place (tests/integration/test_status.py reads a
        live group's members through this)."""
        [response] = await self._retrying(self._admin.describe_consumer_groups, [group_id])
        state: str | None = None
        members: list[tuple[str, str, str]] = []
        for described in response.groups:
            # DescribeGroupsResponse: (error_code, group, state, protocol_type, protocol, members)
            # with members as (member_id, client_id, client_host, metadata, assignment)
            if described[1] != group_id:
                continue
            state = str(described[2]) or None
            members = [(str(m[0]), str(m[1]), str(m[2])) for m in described[5]]
        offsets = await self._retrying(self._admin.list_consumer_group_offsets, group_id)
        committed = {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in offsets.items()
            if isinstance(tp, TopicPartition) and meta.offset >= 0
        }
        return GroupFacts(group_id=group_id, state=state, members=members, committed=committed)

    async def _retrying(self, call: Any, *args: Any) -> Any:
        """``call(*args)``, again after a retriable Kafka error (a fresh cluster has no group
        coordinator until its offsets topic exists) with backoff, for at most ``timeout_s``."""
        deadline = time.monotonic() + self._timeout_s
        delay_s = 0.2
        while True:
            try:
                return await call(*args)
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() + delay_s > deadline:
                    raise
            await asyncio.sleep(delay_s)
            delay_s = min(2.0, delay_s * 2)
