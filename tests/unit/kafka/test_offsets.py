"""OffsetTracker: out-of-order completion, gaps, commits, revoke, and a brute-force model."""

from __future__ import annotations

import random
from typing import NamedTuple

import pytest

from gymstream.kafka.offsets import OffsetTracker


class TP(NamedTuple):
    topic: str
    partition: int


A = TP("tasks", 0)
B = TP("tasks", 1)


def make_tracker() -> OffsetTracker[TP]:
    return OffsetTracker[TP]()


def test_nothing_is_committable_until_the_first_offset_is_done() -> None:
    tracker = make_tracker()
    for offset in range(3):
        tracker.start(A, offset)
    tracker.done(A, 2)
    tracker.done(A, 1)
    assert tracker.committable() == {}
    assert tracker.in_flight(A) == 1
    tracker.done(A, 0)
    assert tracker.committable() == {A: 3}
    assert tracker.in_flight() == 0


def test_out_of_order_completion_commits_only_the_done_prefix() -> None:
    tracker = make_tracker()
    for offset in range(10, 15):
        tracker.start(A, offset)
    tracker.done(A, 10)
    tracker.done(A, 13)
    assert tracker.committable() == {A: 11}
    tracker.done(A, 12)
    assert tracker.committable() == {A: 11}
    tracker.done(A, 11)
    assert tracker.committable() == {A: 14}
    tracker.done(A, 14)
    assert tracker.committable() == {A: 15}


def test_gaps_in_offsets_are_skipped() -> None:
    tracker = make_tracker()
    for offset in (5, 9, 20):  # 6-8 and 10-19 compacted away or transaction markers
        tracker.start(A, offset)
    tracker.done(A, 5)
    assert tracker.committable() == {A: 9}  # the lowest offset in flight
    tracker.done(A, 20)
    assert tracker.committable() == {A: 9}
    tracker.done(A, 9)
    assert tracker.committable() == {A: 21}


def test_starting_after_a_gap_with_nothing_in_flight_moves_the_position() -> None:
    tracker = make_tracker()
    tracker.start(A, 0)
    tracker.done(A, 0)
    tracker.mark_committed({A: 1})
    assert tracker.committable() == {}
    tracker.start(A, 7)
    assert tracker.committable() == {A: 7}


def test_mark_committed_hides_a_position_until_it_advances() -> None:
    tracker = make_tracker()
    for offset in range(4):
        tracker.start(A, offset)
    tracker.done(A, 0)
    tracker.done(A, 1)
    positions = tracker.committable()
    assert positions == {A: 2}
    tracker.mark_committed(positions)
    assert tracker.committable() == {}
    tracker.done(A, 3)
    assert tracker.committable() == {}
    tracker.done(A, 2)
    assert tracker.committable() == {A: 4}


def test_an_older_commit_completing_late_does_not_move_back() -> None:
    tracker = make_tracker()
    for offset in range(3):
        tracker.start(A, offset)
        tracker.done(A, offset)
    tracker.mark_committed({A: 3})
    tracker.mark_committed({A: 1})
    assert tracker.committable() == {}


def test_partitions_are_independent() -> None:
    tracker = make_tracker()
    tracker.start(A, 0)
    tracker.start(B, 100)
    tracker.start(B, 101)
    tracker.done(B, 100)
    assert tracker.committable() == {B: 101}
    assert tracker.in_flight(A) == 1
    assert tracker.in_flight(B) == 1
    assert tracker.in_flight() == 2


def test_done_for_an_offset_not_in_flight_raises() -> None:
    tracker = make_tracker()
    with pytest.raises(ValueError, match="is not tracked"):
        tracker.done(A, 0)
    tracker.start(A, 0)
    with pytest.raises(ValueError, match="has no offset 1 in flight"):
        tracker.done(A, 1)
    tracker.done(A, 0)
    with pytest.raises(ValueError, match="has no offset 0 in flight"):
        tracker.done(A, 0)


def test_start_below_a_started_offset_raises() -> None:
    tracker = make_tracker()
    tracker.start(A, 5)
    with pytest.raises(ValueError, match="increasing order"):
        tracker.start(A, 5)
    with pytest.raises(ValueError, match="increasing order"):
        tracker.start(A, 3)


def test_revoke_returns_final_positions_and_forgets() -> None:
    tracker = make_tracker()
    for offset in range(3):
        tracker.start(A, offset)
        tracker.start(B, offset)
    tracker.done(A, 0)
    tracker.done(B, 1)
    assert tracker.revoke([A, B, TP("other", 0)]) == {A: 1}  # B never completed its first
    assert A not in tracker
    assert B not in tracker
    assert tracker.in_flight() == 0
    assert tracker.committable() == {}
    with pytest.raises(ValueError, match="is not tracked"):
        tracker.done(A, 1)  # work that finishes after the revoke


def test_revoke_leaves_out_positions_already_committed() -> None:
    tracker = make_tracker()
    tracker.start(A, 0)
    tracker.done(A, 0)
    tracker.mark_committed({A: 1})
    assert tracker.revoke([A]) == {}


def test_a_reassigned_partition_starts_afresh() -> None:
    tracker = make_tracker()
    tracker.start(A, 10)
    tracker.done(A, 10)
    tracker.revoke([A])
    tracker.start(A, 4)  # the new owner resumes below what this worker had seen
    tracker.done(A, 4)
    assert tracker.committable() == {A: 5}


def test_mark_committed_ignores_untracked_partitions() -> None:
    tracker = make_tracker()
    tracker.mark_committed({A: 3})
    assert A not in tracker
    assert tracker.committable() == {}


class _Model:
    """Brute force: every started and done offset per partition, recomputed from scratch."""

    def __init__(self) -> None:
        self.started: dict[TP, list[int]] = {}
        self.done: dict[TP, set[int]] = {}
        self.committed: dict[TP, int] = {}

    def position(self, tp: TP) -> int | None:
        started, done = self.started.get(tp, []), self.done.get(tp, set())
        prefix = 0
        while prefix < len(started) and started[prefix] in done:
            prefix += 1
        if prefix == 0:
            return None
        return started[prefix] if prefix < len(started) else started[-1] + 1

    def committable(self) -> dict[TP, int]:
        out = {}
        for tp in self.started:
            position = self.position(tp)
            committed = self.committed.get(tp)
            if position is not None and (committed is None or position > committed):
                out[tp] = position
        return out

    def in_flight(self, tp: TP) -> int:
        return len(set(self.started.get(tp, [])) - self.done.get(tp, set()))


@pytest.mark.parametrize("seed", range(20))
def test_matches_a_brute_force_model_on_random_orderings(seed: int) -> None:
    rng = random.Random(seed)
    tracker, model = make_tracker(), _Model()
    partitions = [TP("tasks", p) for p in range(3)]
    next_offset = dict.fromkeys(partitions, 0)
    for _ in range(2000):
        tp = rng.choice(partitions)
        action = rng.random()
        pending = sorted(set(model.started.get(tp, [])) - model.done.get(tp, set()))
        if action < 0.45 and len(pending) < 50:
            offset = next_offset[tp] + rng.choice([0, 0, 0, 1, 3])  # some gaps
            next_offset[tp] = offset + 1
            tracker.start(tp, offset)
            model.started.setdefault(tp, []).append(offset)
        elif action < 0.9 and pending:
            offset = rng.choice(pending)
            tracker.done(tp, offset)
            model.done.setdefault(tp, set()).add(offset)
        elif action < 0.97:
            positions = tracker.committable()
            assert positions == model.committable()
            if positions and rng.random() < 0.8:
                tracker.mark_committed(positions)
                model.committed.update(positions)
        else:
            final = tracker.revoke([tp])
            assert final == {k: v for k, v in model.committable().items() if k == tp}
            model.started.pop(tp, None)
            model.done.pop(tp, None)
            model.committed.pop(tp, None)
            next_offset[tp] = rng.randrange(0, next_offset[tp] + 1)  # reassigned, may rewind
        assert tracker.committable() == model.committable()
        assert tracker.in_flight(tp) == model.in_flight(tp)
        assert tracker.in_flight() == sum(model.in_flight(p) for p in partitions)
