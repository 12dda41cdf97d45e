"""RolloutSet: a set of (agent, task, rollout) in about a bit per rollout, exact like a set."""

from __future__ import annotations

import random

from gymstream.nemo_gym.outputs.rollout_set import DENSE_ROLLOUTS, RolloutSet


def test_it_behaves_like_a_set_of_tuples_in_any_order() -> None:
    rng = random.Random(7)
    items = [
        (rng.choice(["a", "b"]), rng.randrange(5000), rng.choice([0, 1, 3, 15, DENSE_ROLLOUTS + 9]))
        for _ in range(3000)
    ] + [("a", -1, 0), ("b", 2, -5)]
    rng.shuffle(items)
    ours, reference = RolloutSet(), set()
    for item in items:
        assert ours.add(*item) == (item not in reference)
        reference.add(item)
    assert len(ours) == len(reference)
    assert set(ours) == reference
    assert ("a", 10**9, 0) not in ours
    assert ("c", 0, 0) not in ours
    assert ("a", 0, 99) not in ours
    for item in items[:1000]:
        assert ours.discard(*item) == (item in reference)
        reference.discard(item)
    assert not ours.discard("a", 10**9, 0)
    assert len(ours) == len(reference)
    assert set(ours) == reference


def test_a_million_rollouts_cost_about_a_bit_each() -> None:
    ours = RolloutSet()
    for task in range(62_500):
        for rollout in range(16):
            ours.add("agent", task, rollout)
    assert len(ours) == 1_000_000
    assert ours.nbytes() <= 2 * 1_000_000 // 8  # the bitmaps grow by doubling: at most 2x


def test_many_identical_rows_stay_compact() -> None:
    ours = RolloutSet(("a", 3, rollout) for rollout in range(100_000))  # one task, every rollout
    assert len(ours) == 100_000
    assert ours.nbytes() <= 2 * 100_000 // 8 + DENSE_ROLLOUTS
    assert ("a", 3, 99_999) in ours
    assert ("a", 3, 100_000) not in ours
