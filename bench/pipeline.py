"""Drive gymstream's own commands as separate processes and measure each of them.

``Bench`` holds what every run shares (the Kafka bootstrap, the broker's pid when the bench
started it, a work directory, the CLI's start-up CPU). Runs:

- ``run_staged``: ``gymstream worker`` x W and ``gymstream sink`` started and ready (every task
  partition assigned, the sink's group joined), then ``gymstream produce``; the window is from
  spawning the producer to the sink's exit (it stops by itself once the run is complete);
- ``run_collect``: the single-process ``gymstream collect`` command, spawn to exit;
- ``run_produce``: ``gymstream produce`` alone on a big input (no workers).
Each run gets its own topic prefix, so runs never see each other's messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.analysis import (
    OutputWatcher,
    latencies,
    middle_rate,
    results_by_key,
    sizes,
    worker_span,
)
from bench.kafka_io import read_topic, wait_groups_stable
from bench.procs import CLI, ROOT, Child, cpu_s, peak_rss_mib, self_cpu_s, system_busy_s
from gymstream.kafka.topics import apply_topics, load_layout
from gymstream.settings import KafkaSettings

__all__ = [
    "AGENT",
    "Bench",
    "ModelServer",
    "collect_argv",
    "run_collect",
    "run_produce",
    "run_staged",
    "write_input",
]

AGENT = "example_single_tool_call_simple_agent"
ENVIRONMENT_DATA = "environments/example_single_tool_call/data/example.jsonl"
READY_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 600.0


@dataclass
class Bench:
    """What the runs share. ``broker_pid`` is None for an external cluster (not measured)."""

    bootstrap: str
    broker_pid: int | None
    work: Path
    startup_cpu_s: float = 0.0

    def base_env(self) -> dict[str, str]:
        """The environment of every child: ours, with bytecode cached in the work directory.

        With PYTHONDONTWRITEBYTECODE set (as on some dev boxes) every process would compile all
        its imports from source (~0.6 s CPU each) and the start-up figures would show that, not
        gymstream; a private PYTHONPYCACHEPREFIX keeps .pyc files out of the repo and the venv.
        """
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.work / "pycache")
        return env

    def env(self, prefix: str, model_url: str) -> dict[str, str]:
        env = self.base_env()
        env.update(
            GYMSTREAM_KAFKA_BOOTSTRAP=self.bootstrap,
            GYMSTREAM_TOPIC_PREFIX=prefix,
            GYMSTREAM_MODEL_BASE_URL=model_url,
            GYMSTREAM_MODEL_NAME="scripted",
        )
        return env

    def broker_cpu_s(self) -> float:
        return cpu_s(self.broker_pid) if self.broker_pid is not None else 0.0

    def broker_peak_rss_mib(self) -> float | None:
        return peak_rss_mib(self.broker_pid) if self.broker_pid is not None else None

    def other_share(
        self, machine_s: float, gymstream_s: float, cpu: dict[str, float], wall_s: float
    ) -> float | None:
        """Share of the machine's CPU capacity that other work took during a run's window.

        Busy CPU of the whole machine minus what the run's own processes used (gymstream's,
        the broker's, the model's and the bench's), over wall time x CPUs. None when the
        broker is external (its CPU is unknown).
        """
        if self.broker_pid is None:
            return None
        ours = gymstream_s + cpu["broker"] + cpu["model"] + cpu["bench"]
        return max(0.0, machine_s - ours) / (wall_s * (os.cpu_count() or 1))

    def input(self, n: int) -> Path:
        """A dataset of ``n`` distinct example_single_tool_call rows (written once per n)."""
        path = self.work / f"input-{n}.jsonl"
        if not path.exists():
            write_input(path, n)
        return path


def write_input(path: Path, n: int) -> None:
    """The environment's 5 example rows, cycled, each with its own ``id`` and the agent_ref."""
    source = [json.loads(x) for x in (ROOT / ENVIRONMENT_DATA).read_text().splitlines() if x]
    with path.open("w") as handle:
        for i in range(n):
            row = {**source[i % len(source)], "id": i}
            row["agent_ref"] = {"type": "responses_api_agents", "name": AGENT}
            handle.write(json.dumps(row) + "\n")


class ModelServer:
    """``gymstream model serve-scripted`` in its own process (its CPU is reported apart)."""

    def __init__(self, bench: Bench, latency_ms: float, *, jitter_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.child = Child(
            [
                *CLI,
                "model",
                "serve-scripted",
                "--port",
                "0",
                "--latency-ms",
                str(latency_ms),
                "--latency-jitter-ms",
                str(jitter_ms),
            ],
            env=bench.base_env(),
            log=bench.work / "logs" / f"model-{latency_ms:g}ms-j{jitter_ms:g}.log",
            pipe=True,
        )
        stdout = self.child.proc.stdout
        line = stdout.readline().decode() if stdout is not None else ""
        if "listening on" not in line:
            self.child.kill()
            raise RuntimeError(f"scripted model did not start: {line!r}")
        self.url = line.split()[-1]

    def cpu_s(self) -> float:
        return self.child.cpu_s()

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.child.pid)

    def stop(self) -> None:
        self.child.stop()


def _per_rollout_ms(bench: Bench, cpu: dict[str, float], n: int) -> dict[str, float | None]:
    """CPU ms per rollout of each process; the broker's is None when it is not ours to see."""
    found: dict[str, float | None] = {k: v / n * 1000 for k, v in cpu.items()}
    if bench.broker_pid is None:
        found["broker"] = None
    return found


def new_prefix(label: str) -> str:
    return f"bench-{label}-{uuid.uuid4().hex[:6]}"


def apply(bench: Bench, prefix: str) -> None:
    """Create the run's topics (as ``gymstream topics apply`` would)."""
    options = KafkaSettings(bootstrap=bench.bootstrap).client_options()
    asyncio.run(apply_topics(options, load_layout(None, prefix), [AGENT]))


def _output_checks(output: Path, n: int) -> dict[str, Any]:
    lines = [x for x in output.read_bytes().split(b"\n") if x]
    keys = {(r["_ng_task_index"], r["_ng_rollout_index"]) for r in map(json.loads, lines)}
    if len(lines) != n or len(keys) != n:
        raise RuntimeError(f"{output}: {len(lines)} rows, {len(keys)} distinct, expected {n}")
    return {"rows": len(lines), "output_row_bytes": sum(map(len, lines)) / len(lines)}


def _from_topics(bench: Bench, prefix: str, output: Path, watcher: OutputWatcher) -> dict[str, Any]:
    """Latencies, the workers' span and message sizes, read back from the run's topics."""
    layout = load_layout(None, prefix)
    parts = {spec.name: spec.partitions for spec in layout.specs([AGENT], brokers=1)}
    results_topic, tasks_topic = layout.results, layout.tasks(AGENT)
    result_records = asyncio.run(read_topic(bench.bootstrap, results_topic, parts[results_topic]))
    task_records = asyncio.run(read_topic(bench.bootstrap, tasks_topic, parts[tasks_topic]))
    results = results_by_key(result_records)
    arrivals = watcher.arrivals()
    return {
        "rate_steady": middle_rate([r.finished_ms / 1000 for r in results.values()]),
        "rate_steady_sink": middle_rate(arrivals),
        "worker_span": worker_span(results),
        "latency_ms": latencies(output, arrivals, results),
        "message_bytes": {"task": sizes(task_records), "result": sizes(result_records)},
    }


def run_staged(
    bench: Bench,
    model: ModelServer,
    *,
    n: int,
    concurrency: int,
    workers: int,
    label: str,
    worker_cli: list[str] = CLI,
) -> dict[str, Any]:
    """Separate producer, worker(s) and sink processes; see the module docstring.

    ``worker_cli`` replaces ``python -m gymstream.cli.main`` for the workers (e.g. a profiler).
    """
    prefix = new_prefix(label)
    apply(bench, prefix)
    env = bench.env(prefix, model.url)
    logs = bench.work / "logs" / label
    run_dir = bench.work / label
    run_dir.mkdir(parents=True, exist_ok=True)
    output = run_dir / "out.jsonl"
    run_id = f"{label}-{uuid.uuid4().hex[:6]}"
    source = bench.input(n)
    worker_logs = [logs / f"worker-{i}.log" for i in range(workers)]
    procs = [
        Child(
            [*worker_cli, "worker", "--agent", AGENT, "--concurrency", str(concurrency)],
            env=env,
            log=log,
        )
        for log in worker_logs
    ]
    sink = Child(
        [*CLI, "sink", "--output", str(output), "--run-id", run_id],
        env=env,
        log=logs / "sink.log",
    )
    setup_started = time.perf_counter()
    try:
        layout = load_layout(None, prefix)
        groups = {layout.worker_group(AGENT): workers, layout.sink_group(run_id): 1}
        asyncio.run(wait_groups_stable(bench.bootstrap, groups, [*procs, sink], READY_TIMEOUT_S))
        setup_s = time.perf_counter() - setup_started
        watcher = OutputWatcher(output).start()
        before = {
            "workers": sum(p.cpu_s() for p in procs),
            "sink": sink.cpu_s(),
            "broker": bench.broker_cpu_s(),
            "model": model.cpu_s(),
            "bench": self_cpu_s(),
            "machine": system_busy_s(),
        }
        started = time.time()
        producer = Child(
            [*CLI, "produce", str(source), "--run-id", run_id, "--rejects", str(run_dir / "rej")],
            env=env,
            log=logs / "producer.log",
        )
        produced = producer.wait(RUN_TIMEOUT_S, "gymstream produce")
        producer.check(produced, "gymstream produce")
        sunk = sink.wait(RUN_TIMEOUT_S, "gymstream sink")
        wall = time.time() - started
        sink.check(sunk, "gymstream sink")
        watcher.stop()
        cpu = {
            # start-up varies by tens of ms, more than a tiny run's work: never below 0
            "producer": max(0.0, produced.cpu_s - bench.startup_cpu_s),
            "producer_with_startup": produced.cpu_s,
            "workers": sum(p.cpu_s() for p in procs) - before["workers"],
            "sink": sunk.cpu_s - before["sink"],
            "broker": bench.broker_cpu_s() - before["broker"],
            "model": model.cpu_s() - before["model"],
            "bench": self_cpu_s() - before["bench"],
        }
        machine_s = system_busy_s() - before["machine"]
        broker_rss = bench.broker_peak_rss_mib()
    finally:
        stop_started = time.perf_counter()
        stopped = [p.stop() for p in procs]
        sink.kill()
        stop_s = time.perf_counter() - stop_started
    for proc, usage in zip(procs, stopped, strict=True):
        proc.check(usage, "gymstream worker")
    cpu["gymstream"] = cpu["producer"] + cpu["workers"] + cpu["sink"]
    measured = cpu["producer_with_startup"] + cpu["workers"] + cpu["sink"]
    return {
        "label": label,
        "n": n,
        "workers": workers,
        "concurrency": concurrency,
        "model_latency_ms": model.latency_ms,
        "wall_s": wall,
        "rate_whole": n / wall,
        "overhead_s": {"start_and_join": setup_s, "stop": stop_s},
        "other_cpu_share": bench.other_share(machine_s, measured, cpu, wall),
        **_from_topics(bench, prefix, output, watcher),
        **_output_checks(output, n),
        "cpu_s": cpu,
        "cpu_ms_per_rollout": _per_rollout_ms(bench, cpu, n),
        "peak_rss_mib": {
            "producer": produced.peak_rss_mib,
            "worker": max(u.peak_rss_mib for u in stopped),
            "sink": sunk.peak_rss_mib,
            "broker": broker_rss,
            "model": model.peak_rss_mib(),
        },
    }


def run_collect(
    bench: Bench, model: ModelServer, *, n: int, concurrency: int, label: int = 0
) -> dict[str, Any]:
    """``gymstream collect`` (topics, producer, worker, sink in one process), spawn to exit."""
    prefix = new_prefix(f"collect{label}")
    env = bench.env(prefix, model.url)
    run_dir = bench.work / f"collect{label}"
    run_dir.mkdir(parents=True, exist_ok=True)
    output = run_dir / "out.jsonl"
    watcher = OutputWatcher(output).start()
    broker0, model0 = bench.broker_cpu_s(), model.cpu_s()
    bench0, machine0 = self_cpu_s(), system_busy_s()
    child = Child(
        collect_argv(bench.input(n), output, concurrency),
        env=env,
        log=bench.work / "logs" / f"collect{label}.log",
    )
    usage = child.wait(RUN_TIMEOUT_S, "gymstream collect")
    child.check(usage, "gymstream collect")
    watcher.stop()
    cpu = {
        "collect": usage.cpu_s,
        "collect_without_startup": max(0.0, usage.cpu_s - bench.startup_cpu_s),
        "broker": bench.broker_cpu_s() - broker0,
        "model": model.cpu_s() - model0,
        "bench": self_cpu_s() - bench0,
    }
    machine_s = system_busy_s() - machine0
    return {
        "label": "collect",
        "n": n,
        "concurrency": concurrency,
        "wall_s": usage.wall_s,
        "rate_whole": n / usage.wall_s,
        "other_cpu_share": bench.other_share(machine_s, usage.cpu_s, cpu, usage.wall_s),
        **_from_topics(bench, prefix, output, watcher),
        **_output_checks(output, n),
        "cpu_s": cpu,
        "cpu_ms_per_rollout": _per_rollout_ms(bench, cpu, n),
        "peak_rss_mib": {"collect": usage.peak_rss_mib},
    }


def collect_argv(source: Path, output: Path, concurrency: int, *extra: str) -> list[str]:
    """``gymstream collect`` of ``source`` into ``output``, no progress bar."""
    return [
        *CLI,
        "collect",
        *extra,
        "--input",
        str(source),
        "--output",
        str(output),
        "--concurrency",
        str(concurrency),
        "--no-progress",
        # the bench's own prefix is private already; the shared namespace keeps the task topic
        # (collect drops a private namespace's task topics at the end) for the figures read
        # back from it
        "--namespace",
        "shared",
    ]


def run_produce(bench: Bench, source: Path, rows: int) -> dict[str, Any]:
    """``gymstream produce`` of a big input with no consumer: rows/s, CPU and peak RSS."""
    prefix = new_prefix("produce")
    apply(bench, prefix)
    env = bench.env(prefix, "http://127.0.0.1:9/v1")
    broker0 = bench.broker_cpu_s()
    child = Child(
        [*CLI, "produce", str(source), "--run-id", "big", "--rejects", str(bench.work / "rej")],
        env=env,
        log=bench.work / "logs" / "produce-big.log",
    )
    usage = child.wait(RUN_TIMEOUT_S * 2, "gymstream produce (big input)")
    child.check(usage, "gymstream produce (big input)")
    return {
        "rows": rows,
        "input_mib": source.stat().st_size / 2**20,
        "wall_s": usage.wall_s,
        "rate": rows / usage.wall_s,
        "cpu_s": usage.cpu_s,
        "cpu_us_per_row": max(0.0, usage.cpu_s - bench.startup_cpu_s) / rows * 1e6,
        "peak_rss_mib": usage.peak_rss_mib,
        "broker_cpu_us_per_row": (
            (bench.broker_cpu_s() - broker0) / rows * 1e6 if bench.broker_pid is not None else None
        ),
    }
