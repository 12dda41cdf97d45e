"""Bounded metrics: a Distribution is exact while values are few, within 1% once they are many."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest

from gymstream.nemo_gym.outputs.aggregate import (
    EXACT_VALUES,
    MAX_BUCKETS,
    Distribution,
    write_metrics,
)


def test_few_distinct_values_give_exact_summaries() -> None:
    rng = random.Random(1)
    values = [rng.choice([0.0, 0.5, 1.0, 3.0]) for _ in range(10_001)] + [2.0]
    dist = Distribution()
    for value in values:
        dist.add(value)
    summary = dist.summary()
    assert summary["median"] == statistics.median(values)
    assert summary["mean"] == pytest.approx(statistics.fmean(values))
    assert summary["std"] == pytest.approx(statistics.stdev(values))
    assert (summary["min"], summary["max"]) == (0.0, 3.0)


def test_many_distinct_values_keep_a_bounded_histogram_and_a_close_median() -> None:
    rng = random.Random(2)
    values = [rng.lognormvariate(3, 2) * rng.choice([1, 1, 1, -1]) for _ in range(50_000)]
    dist = Distribution()
    for value in values:
        dist.add(value)
    assert dist.exact is None
    assert len(dist.hist) <= MAX_BUCKETS
    true = statistics.median(values)
    assert dist.median() == pytest.approx(true, rel=0.011)
    assert dist.summary()["std"] == pytest.approx(statistics.stdev(values), rel=1e-6)
    assert len(set(values)) > EXACT_VALUES


def test_the_metrics_file_has_exact_per_task_summaries(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows, per_task = [], {}
    for task in rng.sample(range(5000), 300):  # out of order, as a sink writes them
        rewards = [rng.random() for _ in range(rng.randint(1, 5))]
        per_task[task] = rewards
        rows += [
            {
                "agent_ref": {"name": "a"},
                "_ng_task_index": task,
                "_ng_rollout_index": i,
                "reward": r,
            }
            for i, r in enumerate(rewards)
        ]
    rng.shuffle(rows)
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    write_metrics(out, tmp_path / "metrics.json")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    tasks = metrics["a"]["tasks"]
    assert list(tasks) == [str(t) for t in sorted(per_task)]
    for task, rewards in per_task.items():
        assert tasks[str(task)]["median"] == statistics.median(rewards)
        assert tasks[str(task)]["rollouts"] == len(rewards)
    assert metrics["a"]["rollouts"] == len(rows)
