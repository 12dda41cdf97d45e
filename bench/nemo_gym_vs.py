"""NeMo Gym 0.7.0's own collector beside ``gymstream collect`` over the same NeMo Gym servers.

    python -m bench.nemo_gym_vs --rollouts 2000            # ~5-10 min on 2 cores
    python -m bench.nemo_gym_vs --render bench/results/nemo_gym_vs.json --markdown

Same machine, same fake model (gymstream's scripted model, its own process), same NeMo Gym
resources server (``example_single_tool_call``; ``--environments`` adds
``example_multi_step``), same input rows (NeMo Gym's example rows cycled to ``--rollouts``, each
with its own ``id``), same concurrency. Per environment, ``--repeat`` rounds, each running
NeMo Gym's side and then gymstream's (interleaved):

- NeMo Gym: its collector (``collect_rollouts``) -> its ``legacy_agent`` environment server ->
  its ``simple_agent`` -> its ``openai_model`` model server -> the scripted model, and the
  agent -> the resources server;
- gymstream: ``gymstream collect --config <NeMo Gym's YAML files>`` (Kafka: one local broker
  started here, or ``--bootstrap``) -> the scripted model and the resources server directly.
For each run: rollouts/s (whole command, and steady = the middle 80% of output rows by arrival),
CPU per rollout of each side's own processes and, apart, of the shared servers, HTTP requests
per rollout as counted at every server, the load average; then the ratios, and whether both
wrote the same rows with the same rewards. See docs/performance.md for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.nemo_gym_side import (
    ENVIRONMENTS,
    nemo_gym_startup_cpu_s,
    run_gymstream,
    run_nemo_gym,
    shared_servers,
)
from bench.pipeline import Bench
from bench.procs import ROOT, startup_cpu_s

__all__ = ["main", "render", "summarise"]

# each side's own processes; the shared ones are reported apart
OWN = {
    "nemo_gym": ("collector", "environment_server", "agent_server", "model_server"),
    "gymstream": ("collector",),
}
SHARED = ("resources_server", "fake_model")
NOT_HOPS = {"/health", "/aggregate_metrics"}  # readiness and the once-per-run metrics call


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.nemo_gym_vs", description=__doc__)
    parser.add_argument("--rollouts", type=int, default=2000, help="rollouts per run (2000)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per environment (2)")
    parser.add_argument(
        "--concurrency", type=int, default=256, help="rollouts in flight, both sides (256)"
    )
    parser.add_argument(
        "--environments",
        default="example_single_tool_call",
        help=f"comma-separated, of {', '.join(ENVIRONMENTS)}",
    )
    parser.add_argument("--bootstrap", help="a running Kafka (its CPU is then not measured)")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "nemo_gym_vs.json"
    )
    parser.add_argument("--render", type=Path, help="print the table of a results file")
    parser.add_argument("--markdown", action="store_true", help="the table as Markdown")
    return parser.parse_args(argv)


def _hops(run: dict[str, Any]) -> dict[str, float]:
    """HTTP requests per rollout at each server (readiness and /aggregate_metrics left out)."""
    return {
        server: sum(v for p, v in paths.items() if p not in NOT_HOPS and p != "requests") / run["n"]
        for server, paths in run["http"].items()
    }


def _per_run(run: dict[str, Any], startup_s: float) -> dict[str, Any]:
    own = OWN[run["side"]]
    cpu, n = run["cpu_s"], run["n"]
    own_s = sum(cpu.get(k, 0.0) for k in own)
    hops = _hops(run)
    return {
        "rate_whole": run["rate_whole"],
        "rate_steady": run["rate_steady"],
        "own_cpu_ms": own_s / n * 1000,
        "own_cpu_ms_without_startup": max(0.0, own_s - startup_s) / n * 1000,
        "own_and_broker_cpu_ms": (own_s + cpu.get("broker", 0.0)) / n * 1000,
        "shared_cpu_ms": sum(cpu.get(k, 0.0) for k in SHARED) / n * 1000,
        "broker_cpu_ms": cpu["broker"] / n * 1000 if "broker" in cpu else None,
        "cpu_ms_by_process": {k: v / n * 1000 for k, v in cpu.items()},
        "hops": sum(hops.values()),
        "hops_by_server": hops,
        "loadavg": run["loadavg"][0],
    }


def _same_rows(runs: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Every run wrote n rows, and each (task, rollout) has the reward of the first run."""
    first = runs[0]["rewards"]
    differing = [
        sum(1 for k, v in run["rewards"].items() if first.get(k) != v)
        + len(set(first) ^ set(run["rewards"]))
        for run in runs
    ]
    return {
        "rows": [run["rows"] for run in runs],
        "all_n": all(run["rows"] == n and len(run["rewards"]) == n for run in runs),
        "rows_differing_from_first_run": differing,
        "same": all(d == 0 for d in differing),
        "rewards": sorted({str(v) for run in runs for v in run["rewards"].values()}),
    }


def _spread(values: list[float | None]) -> dict[str, float] | None:
    found = [v for v in values if v is not None]
    if not found:
        return None
    return {"median": statistics.median(found), "min": min(found), "max": max(found)}


def summarise(runs: list[dict[str, Any]], startup: dict[str, float]) -> dict[str, Any]:
    """Per side: each figure's median, min and max over its runs; then gymstream vs NeMo Gym."""
    out: dict[str, Any] = {}
    for side in OWN:
        mine = [_per_run(r, startup[side]) for r in runs if r["side"] == side]
        figures = [k for k, v in mine[0].items() if not isinstance(v, dict)] if mine else []
        out[side] = {k: _spread([m[k] for m in mine]) for k in figures}
        out[side]["runs"] = mine
    ng, gs = out["nemo_gym"], out["gymstream"]

    def ratio(key: str, invert: bool = False) -> float | None:
        a, b = (ng.get(key) or {}).get("median"), (gs.get(key) or {}).get("median")
        if not a or not b:
            return None
        return a / b if invert else b / a

    out["ratio"] = {
        "rate_whole": ratio("rate_whole"),
        "rate_steady": ratio("rate_steady"),
        "own_cpu": ratio("own_cpu_ms", invert=True),  # NeMo Gym's CPU / gymstream's
        "own_cpu_without_startup": ratio("own_cpu_ms_without_startup", invert=True),
        "own_and_broker_cpu": ratio("own_and_broker_cpu_ms", invert=True),
        "hops": ratio("hops", invert=True),
    }
    out["rows"] = _same_rows(runs, runs[0]["n"])
    return out


# (label, figure, format, ratio) of the table, in order
ROWS = (
    ("rollouts/s, whole command", "rate_whole", ",.0f", "rate_whole"),
    ("rollouts/s, steady (middle 80% of rows)", "rate_steady", ",.0f", "rate_steady"),
    ("CPU ms/rollout, own processes", "own_cpu_ms", ".2f", "own_cpu"),
    (
        "  without the collector's start-up",
        "own_cpu_ms_without_startup",
        ".2f",
        "own_cpu_without_startup",
    ),
    ("  own processes + broker", "own_and_broker_cpu_ms", ".2f", "own_and_broker_cpu"),
    ("CPU ms/rollout, shared: resources server + fake model", "shared_cpu_ms", ".2f", None),
    ("HTTP requests per rollout", "hops", ".1f", "hops"),
    ("load average (1 min) at each run's end", "loadavg", ".1f", None),
)


def _f(spread: dict[str, float] | None, spec: str = ",.0f") -> str:
    if spread is None:
        return "n/a"
    return f"{spread['median']:{spec}} ({spread['min']:{spec}}-{spread['max']:{spec}})"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def render(doc: dict[str, Any], markdown: bool = False) -> str:
    m = doc["meta"]
    lines = [
        f"NeMo Gym 0.7.0's collector vs gymstream collect, {m.get('finished')}: "
        f"{m['machine']['nproc']} CPUs, load average {m['loadavg_start'][0]:.1f} at the start, "
        f"{m.get('loadavg_end', [0])[0]:.1f} at the end; N={doc['params']['rollouts']}, "
        f"concurrency {doc['params']['concurrency']}; Kafka: {m.get('kafka')}",
        "",
    ]
    summaries = doc.get("environments", {})
    if doc.get("runs") and "startup_cpu_s" in m:  # summarised again: old files, new figures
        summaries = {e: summarise(runs, m["startup_cpu_s"]) for e, runs in doc["runs"].items()}
    for environment, s in summaries.items():
        ng, gs, r = s["nemo_gym"], s["gymstream"], s["ratio"]
        rows = [
            (label, _f(ng.get(key), spec), _f(gs.get(key), spec), _x(r.get(ratio)) if ratio else "")
            for label, key, spec, ratio in ROWS
        ]
        rows.insert(
            4, ("  Kafka broker (gymstream only)", "-", _f(gs.get("broker_cpu_ms"), ".2f"), "")
        )
        rw = s["rows"]
        same = f"rows {rw['rows']}; rewards {', '.join(rw['rewards'])}; " + (
            "every (task, rollout) has the same reward in every run"
            if rw["same"]
            else f"rows differing from the first run: {rw['rows_differing_from_first_run']}"
        )
        title = f"{environment}: median (min-max) of {len(ng['runs'])} runs each"
        head = ("figure", "NeMo Gym", "gymstream", "ratio")
        if markdown:
            lines += [f"**{title}**", "", "| " + " | ".join(head) + " |", "|---|--:|--:|--:|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
        else:
            lines.append(title)
            widths = [max(len(row[i]) for row in (head, *rows)) for i in range(4)]
            for row in (head, *rows):
                lines.append(
                    "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                )
        lines += ["", same, ""]
        for side in OWN:
            for i, run in enumerate(s[side]["runs"], 1):
                by = ", ".join(f"{k} {v:.2f}" for k, v in run["cpu_ms_by_process"].items())
                hops = ", ".join(f"{k} {v:.1f}" for k, v in run["hops_by_server"].items())
                lines.append(f"- {side} run {i}: CPU ms/rollout {by}; requests/rollout {hops}")
        lines.append("")
    return "\n".join(lines)


def _run(args: argparse.Namespace, work: Path, doc: dict[str, Any]) -> None:
    from bench.__main__ import kafka_for

    environments = [e for e in args.environments.split(",") if e]
    bootstrap, broker_pid, cluster = kafka_for(args.bootstrap, work, doc["meta"])
    try:
        env = Bench(bootstrap, broker_pid, work).base_env()
        with shared_servers(work, env, bootstrap, broker_pid, environments) as shared:
            startup = {
                "nemo_gym": nemo_gym_startup_cpu_s(shared),
                "gymstream": startup_cpu_s(env, work / "logs" / "start.log"),
            }
            doc["meta"]["startup_cpu_s"] = startup
            for environment in environments:
                runs = doc["runs"][environment] = []
                for round_ in range(args.repeat):
                    for side, run in (("nemo_gym", run_nemo_gym), ("gymstream", run_gymstream)):
                        print(f"{environment} round {round_ + 1}: {side}", file=sys.stderr)
                        runs.append(run(shared, environment, args.rollouts, args.concurrency))
                        _save(args.json, doc)  # each run kept, should a later one not end
                doc["environments"][environment] = summarise(runs, startup)
    finally:
        if cluster is not None:
            cluster.stop(timeout_s=5)


def _save(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        print(render(json.loads(args.render.read_text()), markdown=args.markdown))
        return 0
    from bench.__main__ import machine

    work = Path(tempfile.mkdtemp(prefix="gymstream-ngvs-"))
    doc: dict[str, Any] = {
        "meta": {
            "command": " ".join(["python -m bench.nemo_gym_vs", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "loadavg_start": os.getloadavg(),
            "work": str(work),
        },
        "params": {k: getattr(args, k) for k in ("rollouts", "repeat", "concurrency")},
        "runs": {},
        "environments": {},
    }
    started = time.perf_counter()
    ok = False
    try:
        _run(args, work, doc)
        ok = True
    except Exception:
        traceback.print_exc()
        print(f"bench failed; logs are kept in {work}", file=sys.stderr)
    doc["meta"].update(
        elapsed_s=time.perf_counter() - started,
        loadavg_end=os.getloadavg(),
        finished=time.strftime("%Y-%m-%d %H:%M:%S %z"),
        complete=ok,
    )
    _save(args.json, doc)
    if doc["environments"]:
        print(render(doc, markdown=args.markdown))
    print(f"results: {args.json}; work directory {work}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
