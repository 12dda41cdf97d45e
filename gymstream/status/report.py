"""The pure step of `gymstream status`: the facts read from Kafka -> the report.

No Kafka here (``facts.py`` reads it). The report's msgspec structs are the stable ``--json``
document (docs/status.md names every field; tests/unit/status/test_status_doc.py holds the two
together). A figure that cannot be known from the facts is ``None`` (JSON null), never a guess:
``published`` is the manifest's expected count once the producer says ``produced`` (it awaits
every send first) and unknown while it produces; ``written`` and ``failed`` come from the
sink's ``SinkProgress`` record and are unknown until a sink has published one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from gymstream.kafka.topics import SHARED_NAMESPACE
from gymstream.nemo_gym.rows.rollouts import DEFAULT_REPEATS_KEY
from gymstream.runs.models import mixed_models_line
from gymstream.wire.records import ModelOutageRecord, RunManifest, SinkProgress, StreamProgress

__all__ = [
    "SCHEMA_VERSION",
    "AgentStatus",
    "GroupFacts",
    "GroupStatus",
    "MemberStatus",
    "RunFacts",
    "RunStatus",
    "SinkStatus",
    "StatusDocument",
    "TopicOffsets",
    "TrainerStatus",
    "build_document",
    "build_run",
    "lag",
    "run_agents",
]

SCHEMA_VERSION = 1


# --- the facts (what facts.py reads) ---------------------------------------------------------
@dataclass(frozen=True)
class TopicOffsets:
    """Per partition of a topic: the log start offset and the end offset (next to be written)."""

    start: Mapping[int, int]
    end: Mapping[int, int]


@dataclass(frozen=True)
class GroupFacts:
    """A consumer group: its state and members (describe) and its committed offsets."""

    group_id: str
    state: str | None = None
    members: Sequence[tuple[str, str, str]] = ()  # (member id, client id, client host)
    committed: Mapping[tuple[str, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFacts:
    """Everything known about one run, and about the topics and groups it uses."""

    manifest: RunManifest
    sink: SinkProgress | None
    positions: Sequence[StreamProgress]
    sink_group: GroupFacts
    worker_groups: Mapping[str, GroupFacts]
    task_offsets: Mapping[str, TopicOffsets | None]  # per agent; None: no task topic
    task_topics: Mapping[str, str]
    results_topic: str
    failures_topic: str
    results: TopicOffsets
    failures: TopicOffsets
    # per agent, the model outage of a live worker (the earliest, if several): ``facts.py``
    outages: Mapping[str, ModelOutageRecord] = field(default_factory=dict)


# --- the report (the stable --json document) -------------------------------------------------
class MemberStatus(msgspec.Struct, kw_only=True, frozen=True):
    member_id: str
    client_id: str
    host: str


class GroupStatus(msgspec.Struct, kw_only=True, frozen=True):
    group: str
    state: str | None
    members: list[MemberStatus]
    hosts: list[str]


class AgentStatus(msgspec.Struct, kw_only=True, frozen=True):
    agent: str
    expected: int | None
    published: int | None
    written: int | None
    failed: int | None
    in_flight: int | None
    lag: int | None
    workers: GroupStatus
    model_down_since_ms: int | None = None  # a worker's model is down (intake paused) since
    model_outage: str | None = None  # "model down for 42 s, intake paused" while it lasts


class SinkStatus(msgspec.Struct, kw_only=True, frozen=True):
    group: str
    reported: bool
    complete: bool
    duplicates: int | None
    updated_ms: int | None
    lag: int | None
    members: list[MemberStatus]


class TrainerStatus(msgspec.Struct, kw_only=True, frozen=True):
    consumer: str
    unit: str
    group_size: int
    closed_units: int
    acknowledged_units: int
    expected_units: int | None
    policy_version: int | None
    updated_ms: int
    position: dict[str, dict[int, int]]
    lag: int


class RunStatus(msgspec.Struct, kw_only=True, frozen=True):
    run_id: str
    state: str
    created_ms: int
    input_path: str
    complete: bool
    expected: int | None
    published: int | None
    written: int | None
    failed: int | None
    in_flight: int | None
    agents: list[AgentStatus]
    sink: SinkStatus
    trainers: list[TrainerStatus]
    namespace: str = "shared"  # whose workers take the run's tasks (docs/scopes.md)
    cancelled: bool = False  # `gymstream runs cancel` dropped its waiting tasks
    models: dict[str, int] = msgspec.field(default_factory=dict)
    """Results per model that produced them, as the sink counted them (``runs.models``)."""
    mixed_models: str | None = None  # one line when the rows come from more than one model


class StatusDocument(msgspec.Struct, kw_only=True, frozen=True):
    schema_version: int
    generated_ms: int
    topic_prefix: str
    runs: list[RunStatus]


# --- building it ------------------------------------------------------------------------------
def lag(
    offsets: TopicOffsets, committed: Mapping[int, int], partitions: Sequence[int] | None = None
) -> int:
    """Messages past ``committed`` (partition -> next offset to read; a partition without one
    counts from its log start), summed over ``partitions`` (default: every partition)."""
    total = 0
    for p in offsets.end if partitions is None else partitions:
        end = offsets.end.get(p, 0)
        start = offsets.start.get(p, 0)
        total += max(0, end - max(start, committed.get(p, start)))
    return total


def _committed(group: GroupFacts, topic: str) -> dict[int, int]:
    return {p: o for (t, p), o in group.committed.items() if t == topic}


def _members(group: GroupFacts) -> list[MemberStatus]:
    found = [MemberStatus(member_id=m, client_id=c, host=h) for m, c, h in group.members]
    return sorted(found, key=lambda m: (m.host, m.client_id, m.member_id))


def _group(group: GroupFacts) -> GroupStatus:
    members = _members(group)
    return GroupStatus(
        group=group.group_id,
        state=group.state,
        members=members,
        hosts=sorted({m.host for m in members}),
    )


def _sum(values: Sequence[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v or 0 for v in values)


def run_agents(manifest: RunManifest, sink: SinkProgress | None) -> set[str]:
    """The agents a run names: in its manifest (expected, repeats) and its sink's counts."""
    named = set(manifest.expected) | {a for a in manifest.repeats if a != DEFAULT_REPEATS_KEY}
    if sink is not None:
        named |= set(sink.written) | set(sink.failed)
    return named


def outage_note(outage: ModelOutageRecord, now_ms: int) -> str:
    """The outage in words, as the progress line says it (``worker.outage.ModelOutage.note``)."""
    down_s = max(0.0, (now_ms - outage.down_since_ms) / 1000)
    if down_s < outage.budget_s:
        return f"model down for {down_s:.0f} s, intake paused"
    return f"model down for {down_s:.0f} s, over its {outage.budget_s:.0f} s budget: rollouts fail"


def _agent(facts: RunFacts, agent: str, now_ms: int) -> AgentStatus:
    manifest, sink = facts.manifest, facts.sink
    produced = manifest.state == "produced"
    expected = manifest.expected.get(agent, 0) if produced else manifest.expected.get(agent)
    published = expected if produced else None
    written = None if sink is None else sink.written.get(agent, 0)
    failed = None if sink is None else sink.failed.get(agent, 0)
    in_flight = None
    if published is not None and written is not None and failed is not None:
        in_flight = max(0, published - written - failed)  # never negative, whatever a record says
    group = facts.worker_groups.get(agent, GroupFacts(group_id=""))
    offsets = facts.task_offsets.get(agent)
    topic = facts.task_topics.get(agent, "")
    agent_lag = None if offsets is None else lag(offsets, _committed(group, topic))
    outage = facts.outages.get(agent)
    return AgentStatus(
        agent=agent,
        expected=expected,
        published=published,
        written=written,
        failed=failed,
        in_flight=in_flight,
        lag=agent_lag,
        workers=_group(group),
        model_down_since_ms=None if outage is None else outage.down_since_ms,
        model_outage=None if outage is None else outage_note(outage, now_ms),
    )


def _expected_units(manifest: RunManifest, position: StreamProgress) -> int | None:
    if manifest.state != "produced":
        return None
    if position.unit == "rollout":
        return sum(manifest.expected.values())
    units = 0
    repeats = manifest.repeats
    for agent, n in manifest.expected.items():
        size = position.group_size or repeats.get(agent, repeats.get(DEFAULT_REPEATS_KEY))
        if not size:
            return None
        units += -(-n // size)
    return units


def _trainer(facts: RunFacts, position: StreamProgress) -> TrainerStatus:
    behind = lag(facts.results, position.results) + lag(facts.failures, position.failures)
    return TrainerStatus(
        consumer=position.consumer,
        unit=position.unit,
        group_size=position.group_size,
        closed_units=position.closed_units,
        acknowledged_units=position.acknowledged_units,
        expected_units=_expected_units(facts.manifest, position),
        policy_version=position.policy_version,
        updated_ms=position.updated_ms,
        position={
            facts.results_topic: dict(sorted(position.results.items())),
            facts.failures_topic: dict(sorted(position.failures.items())),
        },
        lag=behind,
    )


def _sink(facts: RunFacts) -> SinkStatus:
    group, sink = facts.sink_group, facts.sink
    behind = lag(facts.results, _committed(group, facts.results_topic)) + lag(
        facts.failures, _committed(group, facts.failures_topic)
    )
    return SinkStatus(
        group=group.group_id,
        reported=sink is not None,
        complete=sink is not None and sink.complete,
        duplicates=None if sink is None else sink.duplicates,
        updated_ms=None if sink is None else sink.updated_ms,
        lag=behind,
        members=_members(group),
    )


def build_run(facts: RunFacts, now_ms: int | None = None) -> RunStatus:
    """One run's status from its facts (``now_ms``: the wall clock, for outage durations)."""
    manifest = facts.manifest
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    agents = [_agent(facts, a, now_ms) for a in sorted(run_agents(manifest, facts.sink))]
    expected = sum(manifest.expected.values()) if manifest.state == "produced" else None
    written = _sum([a.written for a in agents]) if facts.sink is not None else None
    failed = _sum([a.failed for a in agents]) if facts.sink is not None else None
    accounted = None if written is None or failed is None else written + failed
    complete = expected is not None and accounted is not None and accounted >= expected
    models = {} if facts.sink is None else facts.sink.models
    return RunStatus(
        run_id=manifest.run_id,
        state=manifest.state,
        created_ms=manifest.created_ms,
        input_path=manifest.input_path,
        complete=complete,
        expected=expected,
        published=expected,
        written=written,
        failed=failed,
        in_flight=None if expected is None or accounted is None else max(0, expected - accounted),
        agents=agents,
        sink=_sink(facts),
        trainers=[_trainer(facts, p) for p in facts.positions],
        namespace=manifest.namespace or SHARED_NAMESPACE,
        cancelled=manifest.cancelled_ms > 0,
        models=dict(models),
        mixed_models=mixed_models_line(manifest.run_id, models),
    )


def build_document(
    runs: Sequence[RunFacts], *, generated_ms: int, topic_prefix: str
) -> StatusDocument:
    """The whole document: the runs in the order given (facts.py: newest first)."""
    return StatusDocument(
        schema_version=SCHEMA_VERSION,
        generated_ms=generated_ms,
        topic_prefix=topic_prefix,
        runs=[build_run(r, generated_ms) for r in runs],
    )
