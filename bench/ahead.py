"""Ahead mode (``client.ahead.AheadRuns``) with a simulated trainer: idle time per step, rollouts/s.

    python -m bench.ahead --steps 6 --batch-size 16 --step-s 0.5 --ahead 0,1,2

A trainer loop of ``--steps`` steps: take the next batch (``--batch-size`` rows of
``example_single_tool_call``), then "train" on it (``asyncio.sleep(--step-s)``; the policy
version goes up by one). With K = ``--ahead``, up to K+1 batches are submitted before a take, so
K batches are collected while the trainer trains (K=0: request/response, the trainer waits for
each whole batch). The model is gymstream's scripted model in its own process with
``--latency-ms`` per model call; the workers are the client's own, in this process, with
``--concurrency`` rollouts at a time. One client serves every K (a warm-up batch first pays the
workers' group join).

Per K: the trainer's idle time per step (waiting in ``take``), mean over the steps after the
first (the first always waits a whole batch) and the first apart; rollouts/s over the whole
loop (rows of every step / wall time); the largest staleness (versions) of a batch trained on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.pipeline import Bench, ModelServer
from bench.procs import ROOT
from gymstream.client import AheadRuns, RolloutClient
from gymstream.kafka.topics import load_layout
from gymstream.nemo_gym.config.agents import load_config
from gymstream.settings import KafkaSettings, ModelSettings, RolloutSettings

__all__ = ["main"]

AGENT = "example_single_tool_call_simple_agent"
SOURCE = ROOT / "environments" / "example_single_tool_call" / "data" / "example.jsonl"


def _batch(size: int, step: int) -> list[dict[str, Any]]:
    source = [json.loads(x) for x in SOURCE.read_text().splitlines() if x.strip()]
    rows = []
    for i in range(size):
        row = dict(source[i % len(source)], id=f"s{step}-{i}")
        row["agent_ref"] = {"type": "responses_api_agents", "name": AGENT}
        rows.append(row)
    return rows


async def _loop(client: RolloutClient, k: int, args: argparse.Namespace) -> dict[str, Any]:
    runs = AheadRuns(client, ahead=k)
    submitted, idle, staleness = 0, [], []
    started = time.perf_counter()
    for version in range(args.steps):  # the policy version goes up by one per step
        while submitted < args.steps and runs.in_flight <= k:
            runs.submit(_batch(args.batch_size, submitted), policy_version=version)
            submitted += 1
        waited = time.perf_counter()
        done = await runs.take(current_version=version)
        idle.append(time.perf_counter() - waited)
        staleness.append(version - done.policy_version)
        await asyncio.sleep(args.step_s)  # the trainer's step
    wall = time.perf_counter() - started
    await runs.close()
    return {
        "ahead": k,
        "idle_first_s": idle[0],
        "idle_per_step_s": statistics.mean(idle[1:]) if len(idle) > 1 else idle[0],
        "wall_s": wall,
        "rollouts_per_s": args.steps * args.batch_size / wall,
        "max_staleness": max(staleness),
    }


async def _all(bootstrap: str, model_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    defaults = RolloutSettings.from_environment()
    settings = RolloutSettings(
        model=ModelSettings(base_url=model_url, name="scripted"),
        retry=defaults.retry,
        worker=defaults.worker,
    )
    layout = load_layout(prefix=f"bench{uuid.uuid4().hex[:8]}a")
    async with RolloutClient(
        load_config(),
        kafka=KafkaSettings(bootstrap=bootstrap),
        layout=layout,
        settings=settings,
        concurrency=args.concurrency,
    ) as client:
        async for _ in client.run(_batch(args.batch_size, -1)):  # warm-up: the group join
            pass
        return [await _loop(client, k, args) for k in args.ahead]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ahead", description=__doc__)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--step-s", type=float, default=0.5, help="simulated trainer step")
    parser.add_argument("--ahead", default="0,1,2", help="the K values, comma-separated")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="per model call")
    parser.add_argument("--concurrency", type=int, default=8, help="worker rollouts at a time")
    parser.add_argument("--bootstrap", help="a running Kafka (default: start one here)")
    args = parser.parse_args(argv)
    args.ahead = [int(x) for x in args.ahead.split(",") if x.strip()]
    from bench.__main__ import kafka_for

    work = Path(tempfile.mkdtemp(prefix="gymstream-ahead-"))
    meta: dict[str, Any] = {}
    bootstrap, broker_pid, cluster = kafka_for(args.bootstrap, work, meta)
    model = ModelServer(Bench(bootstrap, broker_pid, work), args.latency_ms)
    try:
        rows = asyncio.run(_all(bootstrap, model.url, args))
    finally:
        model.stop()
        if cluster is not None:
            cluster.stop(timeout_s=5)
    print("| K | trainer idle per step (s) | idle, first step (s) | rollouts/s | max staleness |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['ahead']} | {r['idle_per_step_s']:.3f} | {r['idle_first_s']:.3f} "
            f"| {r['rollouts_per_s']:.1f} | {r['max_staleness']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
