"""Rates and latencies from what a run left behind: output arrival times and the results topic.

- ``OutputWatcher`` samples the sink's output file every 10 ms (a thread counting new lines),
  so every output row gets an arrival time (wall clock, +-10 ms, at the sink's fsync batches).
- ``middle_rate``: events/s over the middle 80% of a run (from the 10% event to the 90% one),
  which leaves out start-up and the tail; applied to the workers' ``finished_ms`` stamps (the
  steady-state rate the bench reports) and to the rows' arrivals in the output file.
- ``latencies`` joins each output row to its ``ResultMessage``: ``created_ms`` (the producer
  stamps the task), ``finished_ms`` and ``timings.total_s`` (the worker), and the row's arrival
  in the output file, and splits produce -> sink into queue wait, rollout and delivery.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from gymstream.wire.codec import DECODE_RESULT
from gymstream.wire.messages import ResultMessage

__all__ = [
    "OutputWatcher",
    "latencies",
    "middle_rate",
    "percentiles",
    "worker_span",
]


class OutputWatcher:
    """Samples (wall time, lines) of a growing JSONL file from a background thread."""

    def __init__(self, path: Path, poll_s: float = 0.01) -> None:
        self.path = path
        self.poll_s = poll_s
        self.samples: list[tuple[float, int]] = []
        self._offset = 0
        self._lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-output-watcher", daemon=True)

    def start(self) -> OutputWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (after one last sample)."""
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.poll_s)

    def _sample(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        if not chunk:
            return
        self._offset += len(chunk)
        self._lines += chunk.count(b"\n")
        self.samples.append((time.time(), self._lines))

    def arrivals(self) -> list[float]:
        """Arrival time (wall clock, s) of each output line, in file order."""
        times: list[float] = []
        for when, lines in self.samples:
            times.extend([when] * (lines - len(times)))
        return times


def middle_rate(times: list[float], min_distinct: int = 5) -> float | None:
    """Events/s from the event at 10% to the event at 90% of ``times`` (the middle 80%).

    None when that stretch has fewer than ``min_distinct`` distinct times: a rate from a couple
    of batch writes would say more about batching than about the pipeline.
    """
    ordered = sorted(times)
    n = len(ordered)
    lo, hi = int(n * 0.1), int(n * 0.9) - 1
    if hi <= lo or len(set(ordered[lo : hi + 1])) < min_distinct:
        return None
    return (hi - lo) / (ordered[hi] - ordered[lo])


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99, max and mean of ``values`` (empty -> {})."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


class _Keys(msgspec.Struct):
    _ng_task_index: int
    _ng_rollout_index: int


_DECODE_KEYS = msgspec.json.Decoder(_Keys)


def results_by_key(records: list[Any]) -> dict[tuple[int, int], ResultMessage]:
    """Decode result records; the first one per (task, rollout) wins, as in the sink."""
    found: dict[tuple[int, int], ResultMessage] = {}
    for record in records:
        result = DECODE_RESULT.decode(record.value)
        found.setdefault((result.task_index, result.rollout_index), result)
    return found


def latencies(
    output: Path, arrivals: list[float], results: dict[tuple[int, int], ResultMessage]
) -> dict[str, dict[str, float]]:
    """Per-rollout latencies in ms (p50/p99/max/mean), see the module docstring."""
    lines = [x for x in output.read_bytes().split(b"\n") if x]
    total, queue, rollout, delivery = [], [], [], []
    for line, arrived in zip(lines, arrivals, strict=False):
        keys = _DECODE_KEYS.decode(line)
        result = results.get((keys._ng_task_index, keys._ng_rollout_index))
        if result is None or not result.created_ms:
            continue
        run_s = result.timings.get("total_s", 0.0)
        total.append(arrived * 1000 - result.created_ms)
        queue.append(result.finished_ms - run_s * 1000 - result.created_ms)
        rollout.append(run_s * 1000)
        delivery.append(arrived * 1000 - result.finished_ms)
    return {
        "produce_to_sink": percentiles(total),
        "queue_wait": percentiles(queue),
        "rollout": percentiles(rollout),
        "worker_to_sink": percentiles(delivery),
    }


def worker_span(results: dict[tuple[int, int], ResultMessage]) -> dict[str, float]:
    """The workers' busy span (first rollout start to last finish) and what ran in it.

    Whole span: ``rate`` = rollouts / span, ``mean_in_flight`` = sum of rollout times / span
    (Little's L), ``mean_rollout_s`` = W; then rate = L / W exactly. Steady: the same while a
    backlog was waiting, the regime Little's bound describes: from the first start (plus 10% of
    the window, for the ramp-up) to the last rollout's start; after that slots empty as the last
    rollouts finish, a tail that is long when latencies vary. ``steady_in_flight`` is the mean
    number of rollouts running in that window, ``steady_rollout_s`` the mean time of those that
    started in it, and ``steady_rate`` = steady_in_flight / steady_rollout_s.
    ``mean_model_s``: the part of W spent awaiting the model client (every turn).
    """
    if not results:
        return {}
    runs = [
        (r.finished_ms / 1000 - r.timings.get("total_s", 0.0), r.finished_ms / 1000)
        for r in results.values()
    ]
    first, last = min(s for s, _ in runs), max(e for _, e in runs)
    last_start = max(s for s, _ in runs)
    span = last - first
    busy = sum(e - s for s, e in runs)
    mean_rollout = busy / len(runs)
    lo, hi = first + 0.1 * (last_start - first), last_start
    overlap = sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in runs)
    in_flight = overlap / (hi - lo) if hi > lo else 0.0
    inside = [e - s for s, e in runs if lo <= s <= hi] or [e - s for s, e in runs]
    steady_rollout = statistics.fmean(inside)
    return {
        "span_s": span,
        "rate": len(runs) / span if span > 0 else 0.0,
        "mean_in_flight": busy / span if span > 0 else 0.0,
        "mean_rollout_s": mean_rollout,
        "steady_in_flight": in_flight,
        "steady_rollout_s": steady_rollout,
        "steady_rate": in_flight / steady_rollout if steady_rollout > 0 else 0.0,
        "mean_model_s": statistics.fmean(r.timings.get("model_s", 0.0) for r in results.values()),
    }


def sizes(records: list[Any]) -> float:
    """Mean value size in bytes of ``records`` (0 when there are none)."""
    return statistics.fmean(len(r.value) for r in records) if records else 0.0
