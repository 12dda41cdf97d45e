"""Pure parts of the trainer stream: group assembly, watermarks, closed set, filters, mixing."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import msgspec
import pytest
from fixtures.messages import failure_message as failure
from fixtures.messages import result_message as result

from gymstream.errors import ConfigError
from gymstream.trainer.grouping import (
    Assembler,
    ClosedSet,
    Group,
    IntervalSet,
    UnitKey,
    expected_units,
)
from gymstream.trainer.selection import Mixer, StreamStats, is_zero_variance
from gymstream.trainer.stream import StreamOptions, dump_position, load_position
from gymstream.wire.codec import ENCODER
from gymstream.wire.messages import ResultMessage
from gymstream.wire.records import StreamProgress

RUN = "r1"
P0 = ("results", 0)
P1 = ("results", 1)
F0 = ("failures", 0)


def group(agent: str, task: int, rewards: list[float] | None = None) -> Group:
    rewards = rewards if rewards is not None else [0.0, 1.0]
    return Group(
        run_id=RUN,
        agent=agent,
        task_index=task,
        rollouts=tuple(result(task, i, agent=agent, reward=r) for i, r in enumerate(rewards)),
    )


# --- IntervalSet / ClosedSet ------------------------------------------------------------------


def test_interval_set_merges_neighbours_and_round_trips() -> None:
    s = IntervalSet()
    for v in (5, 3, 4, 10, 0, 11, 1):
        assert s.add(v)
    assert not s.add(4)
    assert s.to_flat() == [0, 2, 3, 6, 10, 12]
    assert len(s) == 7
    assert s.ranges == 3
    assert [v for v in range(13) if v in s] == [0, 1, 3, 4, 5, 10, 11]
    again = IntervalSet.from_flat(s.to_flat())
    assert again.to_flat() == s.to_flat()


def test_interval_set_matches_a_plain_set() -> None:
    rng = random.Random(7)
    s, model = IntervalSet(), set()
    for _ in range(2000):
        v = rng.randrange(300)
        assert s.add(v) == (v not in model)
        model.add(v)
    assert [v for v in range(300) if v in s] == sorted(model)
    flat = s.to_flat()
    assert all(a < b for a, b in itertools.pairwise(flat))  # sorted, disjoint, merged


@pytest.mark.parametrize("flat", [[1], [3, 3], [4, 6, 5, 8], [4, 6, 6, 8]])
def test_interval_set_rejects_malformed_wire_form(flat: list[int]) -> None:
    with pytest.raises(ValueError, match="interval"):
        IntervalSet.from_flat(flat)


def test_closed_set_is_per_agent_and_rollout_and_round_trips() -> None:
    closed = ClosedSet()
    closed.add(UnitKey("a", 3))
    closed.add(UnitKey("a", 4))
    closed.add(UnitKey("b", 3, 1))
    assert UnitKey("a", 3) in closed
    assert UnitKey("b", 3) not in closed
    assert UnitKey("b", 3, 1) in closed
    assert closed.count("a") == 2
    assert closed.count() == 3
    wire = msgspec.json.decode(ENCODER.encode(closed.to_wire()))
    assert wire == [
        {"agent": "a", "rollout_index": -1, "tasks": [3, 5]},
        {"agent": "b", "rollout_index": 1, "tasks": [3, 4]},
    ]
    again = ClosedSet.from_wire(closed.to_wire())
    assert UnitKey("a", 4) in again
    assert again.count() == 3


# --- Assembler --------------------------------------------------------------------------------


def test_groups_are_whole_sorted_and_emitted_once() -> None:
    asm = Assembler(RUN, 3)
    assert asm.add_result(P0, 0, result(1, 2)) is None
    assert asm.add_result(P0, 1, result(2, 0)) is None
    assert asm.add_result(P0, 2, result(1, 0)) is None
    assert asm.add_result(P0, 3, result(1, 0)) is None  # a duplicate
    done = asm.add_result(P0, 4, result(1, 1))
    assert done is not None
    assert (done.agent, done.task_index, done.id) == ("a", 1, "r1/a/1")
    assert [r.rollout_index for r in done.rollouts] == [0, 1, 2]
    assert done.rewards == [0.0, 1.0, 2.0]
    assert done.rows()[2] == {"task": 1, "rollout": 2}
    assert asm.add_result(P0, 5, result(1, 2)) is None  # finished, still live: a duplicate
    assert asm.counts.duplicates == 2


def test_other_runs_only_move_the_watermark() -> None:
    asm = Assembler(RUN, 2)
    assert asm.add_result(P0, 7, result(1, 0, run="other")) is None
    assert asm.counts.other_runs == 1
    assert len(asm) == 0
    assert asm.watermarks() == {P0: 8}


def test_watermark_stays_at_the_oldest_live_unit_until_it_closes() -> None:
    asm = Assembler(RUN, 2)
    asm.seek(P1, 40)
    asm.add_result(P0, 10, result(1, 0))  # group 1 opens at 10
    g2 = [asm.add_result(P0, o, result(2, i)) for o, i in ((11, 0), (12, 1))][-1]
    assert g2 is not None
    asm.close(g2.key)
    assert asm.watermarks() == {P0: 10, P1: 40}
    g1 = asm.add_result(P0, 13, result(1, 1))
    assert g1 is not None
    assert asm.watermarks()[P0] == 10  # finished but not closed (handed, say): still pinned
    asm.close(g1.key)
    assert asm.watermarks() == {P0: 14, P1: 40}


def test_a_unit_spanning_results_and_failures_pins_both() -> None:
    asm = Assembler(RUN, 2)
    asm.add_failure(F0, 3, failure(1, 1))
    asm.add_result(P0, 20, result(5, 0))
    done = asm.add_result(P0, 21, result(1, 0))
    assert done is not None
    assert done.failed == (1,)
    assert [r.rollout_index for r in done.rollouts] == [0]
    assert asm.watermarks() == {F0: 3, P0: 20}
    asm.close(done.key)
    assert asm.watermarks() == {F0: 4, P0: 20}


def test_a_result_after_a_failure_of_the_same_rollout_wins() -> None:
    asm = Assembler(RUN, 2)
    asm.add_failure(F0, 0, failure(1, 0))
    asm.add_result(P0, 0, result(1, 0))
    done = asm.add_result(P0, 1, result(1, 1))
    assert done is not None
    assert done.failed == ()


def test_closed_units_and_their_late_duplicates_are_skipped() -> None:
    closed = ClosedSet()
    closed.add(UnitKey("a", 1))
    asm = Assembler(RUN, 2, closed=closed)
    assert asm.add_result(P0, 0, result(1, 0)) is None
    assert asm.add_result(P0, 1, result(1, 1)) is None
    assert asm.counts.closed_skipped == 2
    assert len(asm) == 0


def test_rollout_mode_makes_each_rollout_a_unit() -> None:
    asm = Assembler(RUN, 4, per_rollout=True)
    unit = asm.add_result(P0, 0, result(3, 2))
    assert unit is not None
    assert unit.key == UnitKey("a", 3, 2)
    assert unit.id == "r1/a/3/2"
    assert asm.add_result(P0, 1, result(3, 2)) is None
    failed = asm.add_failure(F0, 0, failure(3, 1))
    assert failed is not None
    assert (failed.rollouts, failed.failed) == ((), (1,))


def test_a_rollout_index_outside_the_group_is_a_config_error() -> None:
    asm = Assembler(RUN, 2)
    with pytest.raises(ConfigError, match=r"rollout index 2, outside a group of size 2"):
        asm.add_result(P0, 5, result(1, 2))


def test_expected_units_must_divide() -> None:
    assert expected_units({"a": 8, "b": 4}, 4) == {"a": 2, "b": 1}
    with pytest.raises(ConfigError, match="expects 6 rollouts for agent 'a'"):
        expected_units({"a": 6}, 4)


def test_restart_from_watermark_and_closed_set_neither_loses_nor_repeats() -> None:
    """Brute force: random interleavings with duplicates, trainer acks at random, restart from
    the saved (watermarks, closed set) at random points: every group is acknowledged once."""
    rng = random.Random(3)
    for trial in range(60):
        size = rng.randint(1, 4)
        parts = [("results", p) for p in range(3)]
        keys = [(agent, task) for agent in "ab" for task in range(rng.randint(2, 12))]
        log: dict[tuple[str, int], list[ResultMessage]] = {tp: [] for tp in parts}
        pending = [result(t, i, agent=a) for a, t in keys for i in range(size)]
        rng.shuffle(pending)
        pending += [rng.choice(pending) for _ in range(rng.randint(0, 6))]  # late duplicates
        for message in pending:
            log[parts[(ord(message.agent) + message.task_index) % 3]].append(message)
        acked: Counter[tuple[str, int]] = Counter()
        positions: dict[tuple[str, int], int] = dict.fromkeys(parts, 0)
        closed = ClosedSet()
        for _restart in range(rng.randint(1, 4)):
            asm = Assembler(RUN, size, closed=ClosedSet.from_wire(closed.to_wire()))
            for tp in parts:
                asm.seek(tp, positions[tp])
            handed: list[Group] = []
            cursor = dict(positions)
            steps = rng.randint(0, len(pending))
            for _ in range(steps):
                tp = rng.choice([p for p in parts if cursor[p] < len(log[p])] or parts)
                if cursor[tp] >= len(log[tp]):
                    break
                done = asm.add_result(tp, cursor[tp], log[tp][cursor[tp]])
                cursor[tp] += 1
                if done is not None:
                    handed.append(done)
                if handed and rng.random() < 0.3:  # the trainer commits what it trained on
                    for g in handed:
                        asm.close(g.key)
                        acked[(g.agent, g.task_index)] += 1
                    handed.clear()
                    positions = {tp: asm.watermarks().get(tp, positions[tp]) for tp in parts}
                    closed = ClosedSet.from_wire(asm.closed.to_wire())
            # crash: whatever was handed and not committed is lost with the process
        asm = Assembler(RUN, size, closed=closed)
        for tp in parts:
            for offset in range(positions[tp], len(log[tp])):
                done = asm.add_result(tp, offset, log[tp][offset])
                if done is not None:
                    asm.close(done.key)
                    acked[(done.agent, done.task_index)] += 1
        assert acked == Counter(dict.fromkeys(keys, 1)), f"trial {trial}"
        assert len(asm) == 0


# --- filters, stats, mixing ---------------------------------------------------------------------


def test_zero_variance_needs_two_equal_rewards() -> None:
    assert is_zero_variance(group("a", 1, [1.0, 1.0, 1.0]))
    assert not is_zero_variance(group("a", 1, [1.0, 0.0, 1.0]))
    assert not is_zero_variance(group("a", 1, [1.0]))


def test_staleness_is_measured_from_the_oldest_known_version() -> None:
    g = Group(
        run_id=RUN,
        agent="a",
        task_index=0,
        rollouts=(result(0, 0, version=5), result(0, 1, version=7), result(0, 2)),
    )
    assert g.staleness(9) == 4
    assert g.staleness(None) is None
    unknown = Group(run_id=RUN, agent="a", task_index=0, rollouts=(result(0, 0),))
    assert unknown.staleness(9) is None


def test_stats_histogram_and_realised_mix() -> None:
    stats = StreamStats()
    g = Group(
        run_id=RUN,
        agent="a",
        task_index=0,
        rollouts=(result(0, 0, version=5), result(0, 1, version=7), result(0, 2)),
    )
    stats.record_delivery(g, 7)
    stats.record_delivery(group("b", 1), 7)
    stats.record_drop(group("b", 2), "zero_variance")
    assert stats.staleness == Counter({2: 1, 0: 1})
    assert stats.unknown_staleness == 1 + 2
    assert stats.mix() == {"a": 0.5, "b": 0.5}
    assert stats.as_dict()["dropped"] == {"zero_variance": 1}


def test_mixer_without_weights_is_fifo() -> None:
    mixer = Mixer()
    for task in range(3):
        mixer.push(group("b" if task % 2 else "a", task))
    assert [g.task_index for g in iter(mixer.pop, None)] == [0, 1, 2]


def drain(mixer: Mixer, **kwargs: object) -> list[str]:
    out = []
    while (g := mixer.pop(**kwargs)) is not None:  # type: ignore[arg-type]
        mixer.served(g.agent)
        out.append(g.agent)
    return out


def test_mixer_follows_weights_when_both_agents_have_work() -> None:
    mixer = Mixer({"a": 3, "b": 1}, max_held=1000)
    for task in range(40):
        mixer.push(group("a", task))
        mixer.push(group("b", task))
    served = drain(mixer)
    first = served[:20]
    assert Counter(first) == {"a": 15, "b": 5}
    assert served[:4] == ["a", "a", "b", "a"]  # ties go to the first name


def test_mixer_waits_for_a_behind_agent_until_full_or_flushed() -> None:
    mixer = Mixer({"a": 1, "b": 1}, max_held=3)
    mixer.push(group("a", 0))
    assert mixer.pop() is not None  # a is first by name, and has work
    mixer.served("a")
    mixer.push(group("a", 1))
    assert mixer.pop() is None  # b is behind and has nothing: hold a
    mixer.push(group("a", 2))
    assert mixer.held("a") == 2
    assert mixer.pop(exhausted={"b"}) is not None  # b gets no more: serve a
    assert mixer.pop() is None
    mixer.push(group("a", 3))
    mixer.push(group("a", 4))  # 3 held now: the budget forces a out
    assert mixer.pop() is not None
    assert mixer.pop(flush=True) is not None
    assert len(mixer) == 1


def test_mixer_rejects_unweighted_agents_and_bad_weights() -> None:
    mixer = Mixer({"a": 1, "b": 0})
    assert mixer.accepts("a")
    assert not mixer.accepts("b")
    assert not mixer.accepts("c")
    with pytest.raises(ConfigError, match="weights"):
        Mixer({"a": 0})
    with pytest.raises(ConfigError, match="weights"):
        Mixer({"a": -1, "b": 2})


# --- options, positions, pacing --------------------------------------------------------------


def test_a_position_records_the_unit_size_the_options_fix() -> None:
    assert StreamOptions(run_id=RUN).unit_size == 0  # per agent, from the run's manifest
    assert StreamOptions(run_id=RUN, unit="rollout").unit_size == 1
    assert StreamOptions(run_id=RUN, group_size=8).unit_size == 8


def test_position_round_trips_through_bytes() -> None:
    closed = ClosedSet()
    closed.add(UnitKey("a", 2))
    position = StreamProgress(
        run_id=RUN,
        consumer="trainer",
        unit="group",
        group_size=4,
        results={0: 12, 3: 7},
        closed=closed.to_wire(),
        closed_units=1,
    )
    again = load_position(dump_position(position))
    assert again == position
    assert UnitKey("a", 2) in ClosedSet.from_wire(again.closed)
