"""The reference points gymstream is measured against: the bare limit and Kafka's floor.

Both run as child processes (``bench.bare``, ``bench.kafka_floor``) that print JSON; this module
starts them and adds what only the parent can see: the scripted model's and the broker's CPU.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from bench.pipeline import Bench, ModelServer
from bench.procs import Child

__all__ = ["run_bare", "run_floor"]


def _child_json(bench: Bench, args: list[str], name: str, timeout_s: float) -> dict[str, Any]:
    child = Child(
        [sys.executable, "-m", *args], env=bench.base_env(), log=bench.work / "logs" / name
    )
    usage = child.wait(timeout_s, name)
    child.check(usage, name)
    lines = child.log.read_text().strip().splitlines()
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def run_bare(
    bench: Bench, model: ModelServer, *, mode: str, n: int, concurrency: int
) -> dict[str, Any]:
    """N rollouts' model calls with no Kafka (``mode`` raw or agent); see ``bench.bare``."""
    model0 = model.cpu_s()
    figures = _child_json(
        bench,
        [
            "bench.bare",
            "--mode",
            mode,
            "--url",
            model.url,
            "--input",
            str(bench.input(n)),
            "--n",
            str(n),
            "--concurrency",
            str(concurrency),
        ],
        f"bare-{mode}.log",
        600,
    )
    # the model also served the warm-up (and, for raw, one recording rollout per distinct row)
    served = n + figures["untimed_rollouts"]
    figures["model_cpu_ms_per_rollout"] = (model.cpu_s() - model0) / served * 1000
    return figures


def run_floor(bench: Bench, *, size: int, count: int) -> dict[str, Any]:
    """Raw aiokafka produce + consume of ``count`` messages of ``size`` bytes."""
    broker0 = bench.broker_cpu_s()
    figures = _child_json(
        bench,
        [
            "bench.kafka_floor",
            "--bootstrap",
            bench.bootstrap,
            "--topic",
            f"bench-floor-{size}-{uuid.uuid4().hex[:6]}",
            "--size",
            str(size),
            "--count",
            str(count),
        ],
        f"floor-{size}.log",
        600,
    )
    if bench.broker_pid is not None:
        figures["broker_cpu_us_per_msg"] = (bench.broker_cpu_s() - broker0) / count * 1e6
    return figures
