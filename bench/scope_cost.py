"""What a collect's private namespace (docs/scopes.md) costs: topics created and start-up time.

``python -m bench.scope_cost --bootstrap B [--agents 1 2] [--rounds 5]`` applies a fresh
deployment's topics once (results, failures, runs: what every collect finds), then per round
and per agent count times, as ``collect`` does at start:

- ``shared``: ``apply_topics`` of the shared namespace whose task topics exist (what a collect
  paid before: describe and compare, create nothing);
- ``private``: ``apply_topics`` of a new run's private namespace (creates one task topic per
  agent with topics.yaml's partitions, waits until every partition has a leader);
- ``drop``: ``drop_private_scope`` (what a complete collect does at the end).

Prints the median seconds (min-max) of each, the extra start-up of a private scope (private -
shared) and the topics and partitions it creates.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable

from gymstream.kafka.clients import client_options
from gymstream.kafka.topics import apply_topics, load_layout, private_namespace
from gymstream.runs.scope import drop_private_scope
from gymstream.settings import KafkaSettings


async def _timed(call: Awaitable[object]) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


def _figure(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})"


async def measure(bootstrap: str, agents: int, rounds: int) -> dict[str, list[float]]:
    options = client_options(KafkaSettings(bootstrap=bootstrap))
    layout = load_layout(prefix=f"scopebench{uuid.uuid4().hex[:8]}")
    names = [f"bench_agent_{i}" for i in range(agents)]
    await apply_topics(options, layout, names)  # the deployment: shared topics exist
    times: dict[str, list[float]] = {"shared": [], "private": [], "drop": []}
    for _ in range(rounds):
        run_id = f"bench-{uuid.uuid4().hex[:8]}"
        scoped = layout.scoped(private_namespace(run_id))
        times["shared"].append(await _timed(apply_topics(options, layout, names)))
        times["private"].append(await _timed(apply_topics(options, scoped, names)))
        times["drop"].append(await _timed(drop_private_scope(options, scoped, run_id)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    partitions = load_layout().specs(["a"], brokers=1)[-1].partitions
    for agents in args.agents:
        times = asyncio.run(measure(args.bootstrap, agents, args.rounds))
        extra = [p - s for p, s in zip(times["private"], times["shared"], strict=True)]
        print(
            f"{agents} agent(s): private scope creates {agents} task topic(s), "
            f"{agents * partitions} partitions; apply shared {_figure(times['shared'])}, "
            f"apply private {_figure(times['private'])}, extra start-up {_figure(extra)}, "
            f"drop {_figure(times['drop'])}"
        )


if __name__ == "__main__":
    main()
