"""``<stem>_aggregate_metrics.json``: summaries of an output file, in bounded memory.

Per agent: count, mean, max, min, median and std of every numeric field NeMo Gym's
aggregation measures (``measured``: the fields of the row NeMo Gym's collector writes, i.e. the
verify response, never the task fields gymstream keeps, no ``_``-prefixed key, plus the
numbers of ``response.usage``; booleans count as 0/1; std is the sample std, 0 for one value,
as pandas'; a masked sample, ``mask_sample: true``, is no measurement and is left out, and the
flag itself is never a metric); per task: the same of its rewards. Keeping every value (for
the median) cost 8 bytes per value and ~500 bytes per task, 40-80 MiB per 100,000 tasks. Here:

- a field's values are a ``Distribution``: running count, mean and sum of squares (Welford),
  min and max, and the counts of its distinct values, exact while there are at most
  ``EXACT_VALUES`` of them (rewards, booleans, turn counts), then a log-scale histogram whose
  buckets are ``RELATIVE_ERROR`` wide (the median is then within 1% of the true one; at most
  ``MAX_BUCKETS`` buckets, the smallest merged first);
- the per-task rewards go to an SQLite table in a temporary directory (its page cache bounded,
  its sort spilling to disk) and come back ordered by agent and task, one task's few values at
  a time, so the per-task summaries stay exact;
- the JSON is written as it is made, a task entry at a time.
"""

from __future__ import annotations

import math
import sqlite3
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from gymstream.nemo_gym.outputs.files import iter_rows
from gymstream.nemo_gym.outputs.output_row import TASK_INDEX, agent_of, nemo_gym_fields
from gymstream.wire.codec import ENCODER

__all__ = [
    "EXACT_VALUES",
    "MAX_BUCKETS",
    "Distribution",
    "aggregate_metrics",
    "measured",
    "write_metrics",
]

EXACT_VALUES = 1024
RELATIVE_ERROR = 0.01
MAX_BUCKETS = 2048
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
_CACHE_KIB = 8 * 1024
_BATCH = 10_000
_MASK = "mask_sample"


def _bucket(value: float) -> int:
    """The histogram bucket of ``value``: 0 for 0, +-(1 + ceil(log_gamma |v|)) otherwise."""
    if value == 0.0:
        return 0
    index = 1 + math.ceil(math.log(abs(value)) / _LOG_GAMMA) + 1100  # > 0 for every double
    return index if value > 0 else -index


def _representative(bucket: int) -> float:
    """A value within ``RELATIVE_ERROR`` of every value of ``bucket``."""
    if bucket == 0:
        return 0.0
    upper = _GAMMA ** (abs(bucket) - 1101)
    value = 2 * upper / (1 + _GAMMA)
    return value if bucket > 0 else -value


class Distribution:
    """Running summary of a stream of numbers: exact but the median once values are many."""

    __slots__ = ("count", "exact", "hist", "m2", "max", "mean", "min")

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.exact: dict[float, int] | None = {}
        self.hist: dict[int, int] = {}

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if self.exact is not None:
            self.exact[value] = self.exact.get(value, 0) + 1
            if len(self.exact) > EXACT_VALUES:
                for seen, times in self.exact.items():
                    self._count_bucket(_bucket(seen), times)
                self.exact = None
        else:
            self._count_bucket(_bucket(value), 1)

    def _count_bucket(self, bucket: int, times: int) -> None:
        self.hist[bucket] = self.hist.get(bucket, 0) + times
        if len(self.hist) > MAX_BUCKETS:  # merge the two lowest buckets (DDSketch's collapse)
            low, second = sorted(self.hist)[:2]
            self.hist[second] += self.hist.pop(low)

    def median(self) -> float:
        """Exact while the distinct values are few, else within ``RELATIVE_ERROR``."""
        low, high = (self.count - 1) // 2, self.count // 2
        if self.exact is not None:
            ordered = sorted(self.exact.items())
            picked = [_at_rank(ordered, low), _at_rank(ordered, high)]
        else:
            buckets = sorted(self.hist.items())
            picked = [
                min(self.max, max(self.min, _representative(int(_at_rank(buckets, rank)))))
                for rank in (low, high)
            ]
        return (picked[0] + picked[1]) / 2

    def summary(self) -> dict[str, float]:
        return {
            "mean": self.mean,
            "max": self.max,
            "min": self.min,
            "median": self.median(),
            "std": math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0,
        }


def _at_rank(ordered: Sequence[tuple[float, int]], rank: int) -> float:
    seen = 0
    for key, times in ordered:
        seen += times
        if rank < seen:
            return key
    return ordered[-1][0]


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def measured(row: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """(field, number) of every value NeMo Gym's reward profile averages for a written row:
    the row NeMo Gym's collector writes (``nemo_gym_fields``) with its ``response.usage``
    merged over it, numbers and booleans only, no ``_``-prefixed key; nothing of a masked
    sample (NeMo Gym's ``select_measured``)."""
    if row.get(_MASK):
        return
    fields = nemo_gym_fields(row)
    response = fields.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    if isinstance(usage, dict):
        fields |= usage
    for key, value in fields.items():
        number = None if key.startswith("_") or key == _MASK else _numeric(value)
        if number is not None:
            yield key, number


def _values_summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "max": max(values),
        "min": min(values),
        "median": statistics.median(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def _tasks(db: sqlite3.Connection) -> Iterator[tuple[str, int, list[float]]]:
    """(agent, task, rewards) ordered by agent then task."""
    current: tuple[str, int] | None = None
    values: list[float] = []
    for agent, task, reward in db.execute(
        "SELECT agent, task, reward FROM rewards ORDER BY agent, task"
    ):
        if (agent, task) != current:
            if current is not None:
                yield current[0], current[1], values
            current, values = (agent, task), []
        values.append(reward)
    if current is not None:
        yield current[0], current[1], values


def _indent(encoded: bytes, depth: int) -> bytes:
    return msgspec.json.format(encoded, indent=2).replace(b"\n", b"\n" + b"  " * depth)


def _chunks(path: Path, db: sqlite3.Connection) -> Iterator[bytes]:
    fields: dict[str, dict[str, Distribution]] = defaultdict(lambda: defaultdict(Distribution))
    batch: list[tuple[str, int, float]] = []
    for row in iter_rows(path):
        agent = agent_of(row)
        for key, number in measured(row):
            fields[agent][key].add(number)
        reward = None if row.get(_MASK) else _numeric(row.get("reward"))
        if reward is not None:
            batch.append((agent, int(row[TASK_INDEX]), reward))
            if len(batch) >= _BATCH:
                db.executemany("INSERT INTO rewards VALUES (?, ?, ?)", batch)
                batch.clear()
    db.executemany("INSERT INTO rewards VALUES (?, ?, ?)", batch)
    tasks = _tasks(db)
    pending = next(tasks, None)
    yield b"{"
    for number, agent in enumerate(sorted(fields)):
        summaries = {k: d.summary() for k, d in sorted(fields[agent].items())}
        rollouts = fields[agent]["reward"].count if "reward" in fields[agent] else 0
        head = ENCODER.encode({"rollouts": rollouts, "metrics": summaries})
        yield b"," if number else b""
        head = _indent(head, 1)
        head = head[: head.rindex(b"}")].rstrip()  # reopened: "tasks" follows
        yield b"\n  " + ENCODER.encode(agent) + b": " + head + b',\n    "tasks": {'
        first = True
        while pending is not None and pending[0] < agent:
            pending = next(tasks, None)  # rewards of an agent without numeric fields: none
        while pending is not None and pending[0] == agent:
            _, task, values = pending
            entry = ENCODER.encode({"rollouts": len(values), **_values_summary(values)})
            yield (b"" if first else b",") + b'\n      "%d": ' % task + _indent(entry, 3)
            first = False
            pending = next(tasks, None)
        yield b"\n    }\n  }" if not first else b"}\n  }"
    yield b"\n}\n" if fields else b"}\n"


def _scratch(directory: str) -> sqlite3.Connection:
    db = sqlite3.connect(Path(directory) / "rewards.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA temp_store = FILE")
    db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    db.execute("CREATE TABLE rewards (agent TEXT, task INTEGER, reward REAL)")
    db.execute("BEGIN")
    return db


def write_metrics(path: Path, target: Path) -> None:
    """Write the summaries of the output file ``path`` to ``target`` (the metrics file)."""
    with tempfile.TemporaryDirectory(prefix="gymstream-metrics-") as scratch:
        db = _scratch(scratch)
        try:
            with target.open("wb") as handle:
                for chunk in _chunks(path, db):
                    handle.write(chunk)
        finally:
            db.close()


def aggregate_metrics(path: Path) -> dict[str, Any]:
    """The summaries of the output file ``path`` as a dict (what ``write_metrics`` writes)."""
    with tempfile.TemporaryDirectory(prefix="gymstream-metrics-") as scratch:
        db = _scratch(scratch)
        try:
            data: dict[str, Any] = msgspec.json.decode(b"".join(_chunks(path, db)))
        finally:
            db.close()
    return data
