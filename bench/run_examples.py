"""NeMo Gym 0.7.0's ``RolloutCollectionHelper.run_examples`` beside gymstream's drop-in.

    python -m bench.run_examples --batches 4 --batch-size 256      # a few minutes on 2 cores

The trainer's shape (TRL's NeMo Gym example): batches of ``--batch-size`` rows, each batch one
``run_examples`` call awaited to its last result before the next. Same machine, same fake model
(gymstream's scripted model), same NeMo Gym servers (``bench.nemo_gym_side.shared_servers``:
the ``example_single_tool_call`` resources server, its simple_agent and environment server, the
openai_model policy server), same rows:

- NeMo Gym: its helper in its venv (configured as its servers are, ``NEMO_GYM_CONFIG_DICT``) ->
  environment server -> simple_agent -> openai_model -> the scripted model; agent -> resources;
- gymstream: ``gymstream.integrations.nemo_gym.RolloutCollectionHelper`` (agents from the same
  NeMo Gym YAML files) -> Kafka -> its own in-process workers -> the scripted model and the same
  resources server.

Per side: rows/s over the batches after the first (the first pays the workers' group join and
connection set-up; its time to the first result is reported apart), time to the first result of
a batch (median), and CPU per rollout of the side's own processes (NeMo Gym: the helper's
process and its environment, agent and model servers; gymstream: the helper's process, workers
included, and the broker when the bench started it); the shared resources server and fake model
apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.nemo_gym_side import ENVIRONMENTS, MODEL_SERVER, Shared, _Window, shared_servers
from bench.pipeline import Bench
from bench.procs import ROOT, Child

__all__ = ["main"]

ENVIRONMENT = "example_single_tool_call"

_DRIVER = """
import asyncio, json, sys, time
rows = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
batch_size, out = int(sys.argv[2]), sys.argv[3]
if sys.argv[4] == "nemo_gym":
    from nemo_gym.rollout_collection import RolloutCollectionHelper
    helper = RolloutCollectionHelper()
else:
    import os
    from gymstream.integrations.nemo_gym import RolloutCollectionHelper
    from gymstream.nemo_gym.config.translate import load_any_config
    paths = sys.argv[5].split(",")
    helper = RolloutCollectionHelper(load_any_config(paths, environ=dict(os.environ)))

async def main():
    batches = []
    for start in range(0, len(rows), batch_size):
        batch = [dict(r) for r in rows[start:start + batch_size]]
        began, first, rewards = time.perf_counter(), None, []
        for future in helper.run_examples(batch):
            _, result = await future
            first = first if first is not None else time.perf_counter() - began
            rewards.append(result["reward"])
        batches.append({"n": len(rewards), "wall_s": time.perf_counter() - began,
                        "first_s": first, "reward_sum": sum(rewards)})
    return batches

batches = asyncio.run(main())
if hasattr(helper, "close"):
    helper.close()
open(out, "w").write(json.dumps(batches))
"""


def _side(shared: Shared, side: str, rows: Path, batch_size: int) -> dict[str, Any]:
    run_dir = shared.work / f"{side}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    out = run_dir / "batches.json"
    _, agent, environment_server = ENVIRONMENTS[ENVIRONMENT]
    own = (
        {
            "environment_server": shared.pid(environment_server),
            "agent_server": shared.pid(agent),
            "model_server": shared.pid(MODEL_SERVER),
        }
        if side == "nemo_gym"
        else ({"broker": shared.broker_pid} if shared.broker_pid is not None else {})
    )
    shared_pids = {"resources_server": shared.pid(ENVIRONMENTS[ENVIRONMENT][0])}
    shared_pids["fake_model"] = shared.model.pid
    window = _Window(shared, {**own, **shared_pids})
    if side == "nemo_gym":
        python = str(shared.servers.python)
        env = {**shared.env, "NEMO_GYM_CONFIG_DICT": shared.servers.config_yaml}
    else:
        python = sys.executable
        env = {
            **shared.env,
            "GYMSTREAM_KAFKA_BOOTSTRAP": shared.bootstrap,
            "GYMSTREAM_TOPIC_PREFIX": f"bench-rex-{uuid.uuid4().hex[:6]}",
            "PYTHONPATH": str(ROOT),
        }
    argv = [python, "-c", _DRIVER, str(rows), str(batch_size), str(out), side]
    child = Child([*argv, shared.config_files()], env=env, log=run_dir / "driver.log")
    usage = child.wait(1800, f"{side} run_examples")
    child.check(usage, f"{side} run_examples")
    measured = window.close()
    batches = json.loads(out.read_text())
    later = batches[1:] or batches
    n_total = sum(b["n"] for b in batches)
    own_cpu = usage.cpu_s + sum(measured["cpu_s"].get(k, 0.0) for k in own)
    shared_cpu = sum(measured["cpu_s"].get(k, 0.0) for k in shared_pids)
    return {
        "side": side,
        "batches": batches,
        "rows_per_s": sum(b["n"] for b in later) / sum(b["wall_s"] for b in later),
        "first_result_s": statistics.median(b["first_s"] for b in later),
        "first_batch_first_result_s": batches[0]["first_s"],
        "own_cpu_ms_per_rollout": 1000 * own_cpu / n_total,
        "shared_cpu_ms_per_rollout": 1000 * shared_cpu / n_total,
        "reward_sum": sum(b["reward_sum"] for b in batches),
        "cpu_s": measured["cpu_s"] | {"driver": usage.cpu_s},
    }


def render(doc: dict[str, Any]) -> str:
    lines = [
        f"`{doc['command']}`: {doc['batches']} batches of {doc['batch_size']} rows "
        f"({ENVIRONMENT}); rows/s and time to first result over batches 2..N",
        "",
        "| side | rows/s | first result (s) | first batch's first result (s) "
        "| own CPU ms/rollout | shared CPU ms/rollout |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in doc["runs"]:
        lines.append(
            f"| {run['side']} | {run['rows_per_s']:,.0f} | {run['first_result_s']:.2f} "
            f"| {run['first_batch_first_result_s']:.2f} | {run['own_cpu_ms_per_rollout']:.1f} "
            f"| {run['shared_cpu_ms_per_rollout']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_examples", description=__doc__)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--bootstrap", help="a running Kafka (default: start one here)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/run_examples.json")
    args = parser.parse_args(argv)
    from bench.__main__ import kafka_for

    work = Path(tempfile.mkdtemp(prefix="gymstream-rex-"))
    meta: dict[str, Any] = {}
    bootstrap, broker_pid, cluster = kafka_for(args.bootstrap, work, meta)
    doc: dict[str, Any] = {
        "command": " ".join(["python -m bench.run_examples", *(argv or sys.argv[1:])]),
        "batches": args.batches,
        "batch_size": args.batch_size,
        "meta": meta,
        "runs": [],
    }
    try:
        env = Bench(bootstrap, broker_pid, work).base_env()
        with shared_servers(work, env, bootstrap, broker_pid, [ENVIRONMENT]) as shared:
            rows = shared.input(ENVIRONMENT, args.batches * args.batch_size)
            for side in ("nemo_gym", "gymstream"):
                started = time.perf_counter()
                doc["runs"].append(_side(shared, side, rows, args.batch_size))
                print(f"{side}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop(timeout_s=5)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
