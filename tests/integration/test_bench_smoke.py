"""The bench's quick mode runs end to end and reports every figure: structure only, never speed.

It runs ``python -m bench --quick`` (the command docs/performance.md documents) against the
session's broker (``--bootstrap``, so no second Kafka starts) and checks that each section is
in the JSON with its keys and positive numbers. How fast anything is lives in bench/, not here.
It needs a broker, so it lives in tests/integration. Smaller sizes than --quick's (24 rollouts,
50 ms model latency, 500 rows and messages for the produce and Kafka-floor sections): every
section still runs and reports, in less time; its cost is mostly process start-ups.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.waits import run_to_end

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def number(doc: dict[str, Any], *path: str) -> float:
    value: Any = doc
    for key in path:
        assert key in value, f"missing {'.'.join(path)}"
        value = value[key]
    assert isinstance(value, int | float), f"{'.'.join(path)} = {value!r}"
    return float(value)


def positive(doc: dict[str, Any], *path: str) -> None:
    assert number(doc, *path) > 0, f"{'.'.join(path)} = {number(doc, *path)!r}"


def present(doc: dict[str, Any], *path: str) -> None:
    """A CPU figure read from /proc in 10 ms ticks: a tiny run may round it down to 0."""
    assert number(doc, *path) >= 0, f"{'.'.join(path)} = {number(doc, *path)!r}"


def test_bench_quick_reports_every_section(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run_to_end(
        [
            *[sys.executable, "-m", "bench", "--quick", "--bootstrap", kafka_bootstrap],
            *["--n", "24", "--latency-ms", "50", "--big-rows", "500", "--floor-messages", "500"],
            *["--json", str(out)],
        ],
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads(out.read_text())
    assert doc["meta"]["complete"] is True
    assert doc["meta"]["machine"]["nproc"] >= 1
    n = doc["params"]["n"]

    for mode in ("raw", "agent"):
        positive(doc, "bare", mode, "rate")
        positive(doc, "bare", mode, "cpu_ms_per_rollout")
        present(doc, "bare", mode, "model_cpu_ms_per_rollout")
        assert doc["bare"][mode]["turns_per_rollout"] == 2.0  # function_call, then a message

    for run in ("staged", "collect"):
        assert doc[run]["rows"] == n
        positive(doc, run, "rate_whole")
        assert "rate_steady" in doc[run]  # None when the output came in one batch
        for lat in ("produce_to_sink", "queue_wait", "rollout", "worker_to_sink"):
            positive(doc, run, "latency_ms", lat, "p99")
        for kind in ("task", "result"):
            positive(doc, run, "message_bytes", kind)
    for stage in ("producer_with_startup", "workers"):
        positive(doc, "staged", "cpu_ms_per_rollout", stage)
    for stage in ("sink", "model"):
        present(doc, "staged", "cpu_ms_per_rollout", stage)
    for stage in ("producer", "worker", "sink", "model"):
        positive(doc, "staged", "peak_rss_mib", stage)
    positive(doc, "staged", "worker_span", "rate")
    positive(doc, "collect", "cpu_ms_per_rollout", "collect")
    positive(doc, "collect", "peak_rss_mib", "collect")

    (bound,) = doc["latency_bound"]
    for key in ("bound", "ratio"):
        positive(bound, key)
    positive(bound, "worker_span", "mean_in_flight")
    assert [r["workers"] for r in doc["scaling"]] == [1]
    for key in ("rate", "peak_rss_mib", "cpu_s"):
        positive(doc, "produce_big", key)
    for kind in ("task", "result"):
        for phase in ("produce", "consume"):
            positive(doc, "kafka_floor", kind, phase, "rate")
            positive(doc, "kafka_floor", kind, phase, "cpu_us_per_msg")

    for title in ("1. Bare limit", "2. gymstream end to end", "3. Latency-bound", "5. Kafka"):
        assert title in done.stdout
