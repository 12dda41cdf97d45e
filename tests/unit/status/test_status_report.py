"""The pure status report: facts -> the --json document, nulls where nothing is known."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gymstream.status.facts import UnknownRunError, choose_runs, live_outages
from gymstream.status.report import (
    GroupFacts,
    RunFacts,
    TopicOffsets,
    build_document,
    build_run,
    lag,
)
from gymstream.wire.codec import ENCODER
from gymstream.wire.records import ModelOutageRecord, RunManifest, SinkProgress, StreamProgress

NO_OFFSETS = TopicOffsets(start={}, end={})


def facts(manifest: RunManifest, sink: SinkProgress | None = None, **over: Any) -> RunFacts:
    agents = set(manifest.expected) | (set(sink.written) | set(sink.failed) if sink else set())
    base: dict[str, Any] = {
        "manifest": manifest,
        "sink": sink,
        "positions": [],
        "sink_group": GroupFacts(group_id=f"p-sink-{manifest.run_id}"),
        "worker_groups": {a: GroupFacts(group_id=f"p-worker-{a}") for a in agents},
        "task_offsets": {a: NO_OFFSETS for a in agents},
        "task_topics": {a: f"p.tasks.{a}" for a in agents},
        "results_topic": "p.results",
        "failures_topic": "p.failures",
        "results": NO_OFFSETS,
        "failures": NO_OFFSETS,
    }
    base.update(over)
    return RunFacts(**base)


def produced(**expected: int) -> RunManifest:
    return RunManifest(run_id="r1", state="produced", expected=expected, repeats={"_default": 2})


def test_lag_counts_past_the_commit_and_from_the_log_start_without_one() -> None:
    offsets = TopicOffsets(start={0: 0, 1: 5, 2: 10}, end={0: 10, 1: 20, 2: 10})
    assert lag(offsets, {0: 4}) == 6 + 15 + 0
    assert lag(offsets, {0: 10, 1: 2}) == 0 + 15 + 0  # a commit below the log start
    assert lag(offsets, {}, partitions=[0]) == 10


def test_a_run_still_producing_without_a_sink_knows_nothing_it_was_not_told() -> None:
    manifest = RunManifest(run_id="r1", state="producing", repeats={"_default": 1})
    status = build_run(facts(manifest))
    assert (status.expected, status.published, status.written, status.failed) == (None,) * 4
    assert status.in_flight is None
    assert not status.complete
    assert status.agents == []
    assert not status.sink.reported
    doc = json.loads(ENCODER.encode(status))
    assert doc["expected"] is None
    assert doc["written"] is None


def test_a_run_in_progress_per_agent_with_its_workers_and_lag() -> None:
    sink = SinkProgress(run_id="r1", written={"a": 3, "b": 1}, failed={"a": 1}, updated_ms=7)
    workers = GroupFacts(
        group_id="p-worker-a",
        state="Stable",
        members=[("m2", "gymstream-w2", "/10.0.0.2"), ("m1", "gymstream-w1", "/10.0.0.1")],
        committed={("p.tasks.a", 0): 4, ("p.tasks.a", 1): 2, ("p.other", 0): 0},
    )
    offsets = TopicOffsets(start={0: 0, 1: 0}, end={0: 6, 1: 5})
    run = facts(
        produced(a=10, b=4),
        sink,
        worker_groups={"a": workers, "b": GroupFacts(group_id="p-worker-b", state="Dead")},
        task_offsets={"a": offsets, "b": None},
    )
    status = build_run(run)
    assert (status.expected, status.published, status.written, status.failed) == (14, 14, 4, 1)
    assert status.in_flight == 9
    assert not status.complete
    a, b = status.agents
    assert (a.agent, a.expected, a.published, a.written, a.failed, a.in_flight) == (
        "a",
        10,
        10,
        3,
        1,
        6,
    )
    assert a.lag == (6 - 4) + (5 - 2)
    assert [m.client_id for m in a.workers.members] == ["gymstream-w1", "gymstream-w2"]
    assert a.workers.hosts == ["/10.0.0.1", "/10.0.0.2"]
    assert (a.workers.state, b.workers.state) == ("Stable", "Dead")
    assert (b.written, b.failed, b.in_flight, b.lag, b.workers.members) == (1, 0, 3, None, [])
    assert status.sink.reported
    assert status.sink.updated_ms == 7


def test_a_run_is_complete_when_written_and_failed_reach_expected() -> None:
    sink = SinkProgress(run_id="r1", written={"a": 3}, failed={"a": 1}, complete=True)
    status = build_run(facts(produced(a=4), sink))
    assert status.complete
    assert (status.written, status.failed, status.in_flight) == (3, 1, 0)
    assert status.sink.complete
    short = build_run(facts(produced(a=5), sink))
    assert not short.complete
    # a sink's counts while the manifest still says producing: never complete
    producing = RunManifest(run_id="r1", state="producing", expected={"a": 4})
    assert not build_run(facts(producing, sink)).complete


def test_trainer_positions_give_lag_and_expected_units() -> None:
    manifest = RunManifest(
        run_id="r1",
        state="produced",
        expected={"a": 8, "b": 6},
        repeats={"a": 4, "_default": 3},
    )
    positions = [
        StreamProgress(
            run_id="r1",
            consumer="t1",
            unit="group",
            group_size=0,
            results={0: 5},
            failures={},
            closed_units=2,
            acknowledged_units=1,
            policy_version=3,
        ),
        StreamProgress(run_id="r1", consumer="t2", unit="rollout", group_size=1),
        StreamProgress(run_id="r1", consumer="t3", unit="group", group_size=7),
    ]
    run = facts(
        manifest,
        positions=positions,
        results=TopicOffsets(start={0: 0, 1: 0}, end={0: 9, 1: 3}),
        failures=TopicOffsets(start={0: 1}, end={0: 2}),
        sink_group=GroupFacts(
            group_id="p-sink-r1", committed={("p.results", 0): 9, ("p.results", 1): 3}
        ),
    )
    status = build_run(run)
    t1, t2, t3 = status.trainers
    assert t1.expected_units == 8 // 4 + 6 // 3
    assert t1.lag == (9 - 5) + 3 + (2 - 1)
    assert t1.position == {"p.results": {0: 5}, "p.failures": {}}
    assert (t1.closed_units, t1.acknowledged_units, t1.policy_version) == (2, 1, 3)
    assert t2.expected_units == 14
    assert t3.expected_units == 2 + 1  # ceil(8/7) + ceil(6/7)
    assert status.sink.lag == 1  # results all committed; the failures topic never


def test_expected_units_unknown_without_a_group_size() -> None:
    manifest = RunManifest(run_id="r1", state="produced", expected={"a": 4})
    position = StreamProgress(run_id="r1", consumer="t", unit="group", group_size=0)
    [trainer] = build_run(facts(manifest, positions=[position])).trainers
    assert trainer.expected_units is None


def test_the_document_carries_its_schema_version_and_the_runs_in_order() -> None:
    runs = [facts(RunManifest(run_id=r, state="producing")) for r in ("new", "old")]
    doc = build_document(runs, generated_ms=5, topic_prefix="p")
    assert (doc.schema_version, doc.generated_ms, doc.topic_prefix) == (1, 5, "p")
    assert [r.run_id for r in doc.runs] == ["new", "old"]


def test_choose_runs_newest_first_with_a_limit_and_one_by_id() -> None:
    held = [RunManifest(run_id=f"r{i}", state="produced", created_ms=i) for i in range(5)]
    assert [m.run_id for m in choose_runs(held, None, 3, "p.runs")] == ["r4", "r3", "r2"]
    assert [m.run_id for m in choose_runs(held, "r1", 3, "p.runs")] == ["r1"]
    with pytest.raises(UnknownRunError, match=r"no run 'nope' on p\.runs \(5 runs there"):
        choose_runs(held, "nope", 3, "p.runs")


def test_a_model_outage_shows_beside_its_agent_while_a_worker_of_its_namespace_lives() -> None:
    live = GroupFacts(group_id="p-worker-a", members=[("m1", "c1", "h1")])
    gone = GroupFacts(group_id="p-worker-b")  # no member: its worker was killed mid-outage
    outages = [
        ModelOutageRecord(agent="a", worker="h1:2", down_since_ms=50_000, budget_s=300),
        ModelOutageRecord(agent="a", worker="h1:1", down_since_ms=40_000, budget_s=300),
        ModelOutageRecord(agent="a", worker="h9:1", namespace="other", down_since_ms=1),
        ModelOutageRecord(agent="b", worker="h2:1", down_since_ms=40_000, budget_s=300),
    ]
    held = live_outages(outages, "", {"a": live, "b": gone})
    assert held == {"a": outages[1]}  # the earliest of the live workers, in this namespace
    run = facts(produced(a=2, b=2), worker_groups={"a": live, "b": gone}, outages=held)
    a, b = build_run(run, now_ms=82_400).agents
    assert (a.model_down_since_ms, a.model_outage) == (40_000, "model down for 42 s, intake paused")
    assert (b.model_down_since_ms, b.model_outage) == (None, None)
    late = build_run(run, now_ms=400_000).agents[0]
    assert late.model_outage == "model down for 360 s, over its 300 s budget: rollouts fail"
