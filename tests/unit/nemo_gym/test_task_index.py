"""TaskIndex: identical rows share a task index; the answers do not change when it spills."""

from __future__ import annotations

import random
from contextlib import closing
from pathlib import Path

import pytest

from gymstream.nemo_gym.rows.task_index import TaskIndex


def _sequence(seed: int, rows: int, distinct: int) -> list[tuple[bytes, int]]:
    """Row keys drawn with repeats; a key's repeats are fixed (a key belongs to one agent)."""
    rng = random.Random(seed)
    repeats_of = {k: rng.choice([1, 2, 4]) for k in range(distinct)}
    return [
        (k.to_bytes(16, "big"), repeats_of[k])
        for k in (rng.randrange(distinct) for _ in range(rows))
    ]


def _assign_all(index: TaskIndex, seq: list[tuple[bytes, int]]) -> list[tuple[int, int]]:
    return [index.assign(key, repeats) for key, repeats in seq]


def test_repeats_share_a_task_and_continue_rollout_indices() -> None:
    with closing(TaskIndex()) as index:
        a, b = b"a" * 16, b"b" * 16
        assert _assign_all(index, [(a, 2), (b, 2), (a, 2), (a, 2)]) == [
            (0, 0),
            (1, 0),
            (0, 2),
            (0, 4),
        ]


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_spilling_to_disk_gives_the_same_answers(limit: int) -> None:
    seq = _sequence(seed=limit, rows=600, distinct=120)
    with closing(TaskIndex()) as in_memory:
        expected = _assign_all(in_memory, seq)
        assert not in_memory.spilled
    with closing(TaskIndex(max_in_memory=limit)) as spilling:
        assert _assign_all(spilling, seq) == expected
        assert spilling.spilled
    # unique (task, rollout) pairs: the property NeMo Gym's indices need
    firsts = [
        (task, first + r)
        for (task, first), (_, n) in zip(expected, seq, strict=True)
        for r in range(n)
    ]
    assert len(set(firsts)) == len(firsts)


def test_the_spill_file_is_removed_on_close() -> None:
    index = TaskIndex(max_in_memory=2)
    with closing(index):
        _assign_all(index, _sequence(seed=1, rows=10, distinct=10))
        assert index._dir is not None
        spill_dir = Path(index._dir.name)
        assert (spill_dir / "tasks.sqlite").exists()
    assert not spill_dir.exists()
