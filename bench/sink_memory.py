"""The sink's peak memory for a run of N rollouts, without a broker; prints one JSON line.

Usage: ``python -m bench.sink_memory --rollouts 1000000 [--repeats 4] [--phase run]``

Feeds the sink's ledger what its loop feeds it (batches of 5,000 decoded results, every rollout
once, tasks in a shuffled order as workers finish them), appends the rows to a temporary output
file as the loop does, then writes the aggregate metrics of that file. ``--phase restart``
instead writes the output first (without counting it) and measures a sink starting on it: the
ledger rebuilt from the files, then the metrics. Peak RSS (``ru_maxrss``) is a high-water mark:
one phase per process. Figures: docs/guarantees.md (item 12).

The ledger and metrics calls fall back to the names main had before the bounded sink
(``read_done_ids``, ``outputs.aggregate_metrics``), so the same bench gives the before figure
on that tree (``git archive 5b9afbb gymstream bench | tar -x -C OLD``, then in OLD, with this
file copied to OLD/bench: ``python -m bench.sink_memory``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from gymstream.sink.ledger import SinkLedger, SinkReport
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import rollout_id
from gymstream.wire.messages import ResultMessage

RUN = "bench-sink-memory-run"
AGENT = "example_single_tool_call_simple_agent"
BATCH = 5000


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _messages(rollouts: int, repeats: int, seed: int) -> Iterator[ResultMessage]:
    tasks = list(range((rollouts + repeats - 1) // repeats))
    random.Random(seed).shuffle(tasks)
    made = 0
    for task in tasks:
        for index in range(repeats):
            if made == rollouts:
                return
            made += 1
            reward = float((task + index) % 2)
            row = {
                "responses_create_params": {"input": [{"role": "user", "content": f"q {task}"}]},
                "response": {"output": [{"type": "message", "content": "an answer"}]},
                "reward": reward,
                "num_turns": 1 + task % 3,
                "latency_s": 0.1 + (task * 7919 + index) % 1000 / 997,
                "_ng_task_index": task,
                "_ng_rollout_index": index,
                "agent_ref": {"name": AGENT},
            }
            yield ResultMessage(
                run_id=RUN,
                rollout_id=rollout_id(RUN, AGENT, task, index),
                agent=AGENT,
                task_index=task,
                rollout_index=index,
                output=msgspec.Raw(ENCODER.encode(row)),
                reward=reward,
            )


def _batches(rollouts: int, repeats: int) -> Iterator[list[ResultMessage]]:
    batch: list[ResultMessage] = []
    for message in _messages(rollouts, repeats, seed=13):
        batch.append(message)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _ledger_from_files(output: Path, failures: Path) -> SinkLedger:
    report = SinkReport(run_id=RUN)
    try:
        from gymstream.nemo_gym.outputs.files import read_rollouts  # type: ignore[attr-defined]

        return SinkLedger(report, read_rollouts(output), read_rollouts(failures))
    except ImportError:  # main before the bounded sink: sets of rollout id strings
        from gymstream.nemo_gym.outputs.files import read_done_ids

        return SinkLedger(report, read_done_ids(output, RUN), read_done_ids(failures, RUN))


def _write_metrics(output: Path, target: Path) -> None:
    try:
        from gymstream.nemo_gym.outputs.aggregate import write_metrics
    except ImportError:  # main before the bounded sink
        from gymstream.nemo_gym.outputs.files import aggregate_metrics  # type: ignore[attr-defined]

        target.write_bytes(ENCODER.encode(aggregate_metrics(output)))
        return
    write_metrics(output, target)


def measure(rollouts: int, repeats: int, phase: str, work: Path) -> dict[str, Any]:
    output, failures = work / "out.jsonl", work / "out_failures.jsonl"
    failures.touch()
    figures: dict[str, Any] = {"rollouts": rollouts, "repeats": repeats, "phase": phase}
    if phase == "restart":  # written by a child: its memory is not this process's peak
        child = os.fork()
        if child == 0:
            with output.open("wb") as handle:
                for batch in _batches(rollouts, repeats):
                    handle.write(b"".join(bytes(m.output) + b"\n" for m in batch))
            os._exit(0)
        os.waitpid(child, 0)
    figures["rss_start_mib"] = round(_rss_mib(), 1)
    started = time.perf_counter()
    if phase == "restart":
        ledger = _ledger_from_files(output, failures)
    else:
        ledger = SinkLedger(SinkReport(run_id=RUN))
        with output.open("ab") as handle:
            for batch in _batches(rollouts, repeats):
                rows = ledger.take(batch)
                handle.write(b"\n".join(rows.output) + b"\n")
    if ledger.report.accounted != rollouts:
        raise SystemExit(f"the ledger counted {ledger.report.accounted} of {rollouts} rollouts")
    figures["ledger_s"] = round(time.perf_counter() - started, 2)
    figures["rss_after_ledger_mib"] = round(_rss_mib(), 1)
    started = time.perf_counter()
    _write_metrics(output, work / "out_aggregate_metrics.json")
    figures["metrics_s"] = round(time.perf_counter() - started, 2)
    figures["rss_after_metrics_mib"] = round(_rss_mib(), 1)
    figures["ledger_growth_mib"] = round(
        figures["rss_after_ledger_mib"] - figures["rss_start_mib"], 1
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=4, help="rollouts per task")
    parser.add_argument("--phase", choices=["run", "restart"], default="run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gymstream-bench-sink-") as work:
        figures = measure(args.rollouts, args.repeats, args.phase, Path(work))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
