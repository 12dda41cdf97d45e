"""Broker faults mid-run: a single broker restarted on its data, one of three brokers stopped.

Worker and sink run as separate processes against a scripted model slow enough that the fault
lands mid-run; neither is restarted. The pipeline must recover by itself: every rollout in the
output exactly once, no failures. Each test prints one line of figures (pytest -s shows it):
rollouts in/out, duplicates the sink dropped, failures, and the time from the fault (the broker
gone) to the next output row.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fixtures.broker import start_local_cluster
from fixtures.model import ModelFactory
from fixtures.pipeline import (
    AGENT_ONE,
    assert_exactly_once,
    cli_env,
    count_lines,
    gymstream,
    kill_hard,
    publish_run,
    read_jsonl,
    single_tool_input,
    spawn,
    start_worker,
    stop_gracefully,
    wait_until,
)
from fixtures.waits import wait_exit

from gymstream.errors import KafkaSetupError
from gymstream.kafka.topics import load_layout
from gymstream.localkafka import Cluster

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

ROWS, REPEATS = 80, 5
EXPECTED = {(AGENT_ONE, t, r) for t in range(ROWS) for r in range(REPEATS)}
FAULT_AT_ROWS = 60  # of 400: the fault lands early, with most of the work still ahead
CONCURRENCY = "8"  # with the model's 40 ms per turn, ~50 rollouts/s: the run lasts ~8 s


class OutputWatch:
    """Samples the output's line count every 20 ms in a thread: when did it grow?"""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OutputWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), count_lines(self.path)))
            self._stop.wait(0.02)

    def growth_after(self, since: float) -> list[float]:
        """Seconds from ``since`` to each sample that saw the output grow, in order."""
        times, last = [], max((n for t, n in self.samples if t <= since), default=0)
        for t, n in self.samples:
            if t > since and n > last:
                times.append(t - since)
                last = n
        return times


@pytest.fixture
def model_url(make_scripted_model: ModelFactory) -> str:
    """A scripted model at 40 ms per turn: the run takes a few seconds, the fault lands mid-way."""
    return make_scripted_model(latency_ms=40).url


def pipeline_env(bootstrap: str, model_url: str) -> dict[str, str]:
    return cli_env(bootstrap, model_url, GYMSTREAM_WORKER_SESSION_TIMEOUT_MS="6000")


def produce(env: dict[str, str], tmp_path: Path, run_id: str) -> None:
    publish_run(env, single_tool_input(tmp_path / "in.jsonl", rows=ROWS), run_id, REPEATS)


def sink_duplicates(log: Path) -> int:
    found = re.findall(r"(\d+) duplicates dropped", log.read_text())
    assert found, log.read_text()[-3000:]
    return int(found[-1])


def run_with_fault(
    env: dict[str, str], tmp_path: Path, run_id: str, fault: Callable[[], float], label: str
) -> dict[str, Any]:
    """Produce, start sink + worker, call ``fault()`` at FAULT_AT_ROWS rows, wait for the end.

    ``fault()`` returns the monotonic time at which the broker was gone. Asserts exactly once
    and no failures; returns the figures.
    """
    produce(env, tmp_path, run_id)
    out = tmp_path / "out.jsonl"
    sink_log, worker_log = tmp_path / "sink.log", tmp_path / "worker.log"
    sink = spawn(["sink", "--output", str(out), "--run-id", run_id], env, sink_log)
    worker = start_worker(AGENT_ONE, env, worker_log, "--concurrency", CONCURRENCY)
    try:
        with OutputWatch(out) as watch:
            wait_until(
                lambda: count_lines(out) >= FAULT_AT_ROWS,
                60,
                f"{FAULT_AT_ROWS} rows",
                watch=[sink, worker, out, sink_log, worker_log],
            )
            broker_gone = fault()
            rows_at_fault = count_lines(out)
            assert rows_at_fault < len(EXPECTED), "the fault did not land mid-run"
            code = wait_exit(sink, "the sink to finish", watch=[worker, out, sink_log, worker_log])
            assert code == 0, sink_log.read_text()[-3000:]
        assert stop_gracefully(worker, watch=[worker_log]) == 0, worker_log.read_text()[-3000:]
    finally:
        for proc in (sink, worker):
            if proc.poll() is None:
                kill_hard(proc)
    rows = read_jsonl(out)
    failures = read_jsonl(tmp_path / "out_failures.jsonl")
    assert_exactly_once(rows, EXPECTED)
    assert not failures, failures[:3]
    growth = watch.growth_after(broker_gone)
    assert growth, "the output never grew after the fault"
    figures = {
        "in": len(EXPECTED),
        "out": len(rows),
        "rows_at_fault": rows_at_fault,
        "duplicates_dropped": sink_duplicates(sink_log),
        "duplicates_in_output": 0,  # assert_exactly_once above
        "failures": len(failures),
        "recover_s": round(growth[0], 2),  # the fault (broker gone) -> the next output row
        "longest_stall_s": round(max(b - a for a, b in pairwise([0.0, *growth])), 2),
        "fault_to_last_row_s": round(growth[-1], 2),
    }
    print(f"\nFAULT {label}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return figures


# --- one broker, restarted on its data ---------------------------------------------------------


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Cluster]:
    """A single-node cluster of this test alone (it gets stopped and restarted)."""
    try:
        cluster = start_local_cluster(tmp_path / "kafka")
    except KafkaSetupError as exc:
        pytest.fail(f"could not start a private broker: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop(timeout_s=2)


def test_single_broker_restart_mid_run(
    private_broker: Cluster, model_url: str, tmp_path: Path
) -> None:
    # the broker watch probes every 0.5 s here: the restart's few seconds cannot slip between
    env = pipeline_env(private_broker.bootstrap, model_url) | {
        "GYMSTREAM_KAFKA_WATCH_INTERVAL_S": "0.5"
    }
    timings: dict[str, float] = {}

    def restart() -> float:
        started = time.monotonic()
        private_broker.stop_broker(1, timeout_s=15)
        gone = time.monotonic()
        private_broker.start_broker(1)
        timings["stop_s"] = gone - started
        timings["down_s"] = time.monotonic() - gone
        return gone

    figures = run_with_fault(env, tmp_path, "restart", restart, "single broker restarted")
    print(
        f"FAULT single broker restarted: stop took {timings['stop_s']:.2f} s, "
        f"down (stopped -> serving again) {timings['down_s']:.2f} s"
    )
    assert figures["out"] == len(EXPECTED)
    # the outage is said once when it starts and once, with its length, when it ends
    for name, who in (("worker.log", f"worker {AGENT_ONE}"), ("sink.log", "sink")):
        lines = (tmp_path / name).read_text().splitlines()
        gone = [x for x in lines if f"{who}: Kafka at {private_broker.bootstrap} stopped" in x]
        back = [x for x in lines if f"{who}: Kafka at {private_broker.bootstrap} answers" in x]
        assert (len(gone), len(back)) == (1, 1), "\n".join(lines[-40:])
        assert re.search(r"after \d+\.\d s away", back[0]), back[0]
        assert sum("publishing failed" in x for x in lines) <= 1, "\n".join(lines[-40:])


# --- three brokers, one stopped ----------------------------------------------------------------


async def leaders(bootstrap: str, topics: list[str]) -> tuple[dict[int, int], set[int]]:
    """(broker id -> partitions it leads, the replication factors seen) over ``topics``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await asyncio.wait_for(admin.describe_topics(topics), 30)
    finally:
        await admin.close()
    led: dict[int, int] = {}
    factors: set[int] = set()
    for topic in described:
        for part in topic["partitions"]:
            led[part["leader"]] = led.get(part["leader"], 0) + 1
            factors.add(len(part["replicas"]))
    return led, factors


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_one_of_three_brokers_down_mid_run(
    how: str, kafka_cluster: Cluster, model_url: str, tmp_path: Path
) -> None:
    """``stop``: controlled shutdown (leaders move first); ``kill``: SIGKILL, no warning."""
    env = pipeline_env(kafka_cluster.bootstrap, model_url)
    layout = load_layout(None, env["GYMSTREAM_TOPIC_PREFIX"])
    topics = [layout.tasks(AGENT_ONE), layout.results, layout.failures, layout.runs]
    downed: list[int] = []

    def take_down_busiest() -> float:
        led, factors = asyncio.run(leaders(kafka_cluster.bootstrap, topics))
        assert factors == {3}, f"topics apply should give replication 3, got {factors}"
        node = max(led, key=lambda n: led[n])  # the leader of the most partitions we use
        downed.append(node)
        if how == "stop":
            kafka_cluster.stop_broker(node, timeout_s=15)
        else:
            pid = kafka_cluster.pids[node]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not kafka_cluster.is_running(node), 10, f"node {node} to die")
        return time.monotonic()

    label = f"1 of 3 brokers {'stopped' if how == 'stop' else 'killed (SIGKILL)'}"
    figures = run_with_fault(env, tmp_path, f"one-of-3-{how}", take_down_busiest, label)
    assert figures["out"] == len(EXPECTED)
    assert not kafka_cluster.is_running(downed[0])  # it stayed down to the end


# --- no broker at all ---------------------------------------------------------------------------


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("stage", ["worker", "sink", "produce"])
def test_no_broker_at_start_is_one_clear_error(stage: str, tmp_path: Path) -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    env = dict(os.environ, GYMSTREAM_KAFKA_BOOTSTRAP=bootstrap, GYMSTREAM_TOPIC_PREFIX="nobroker")
    data = single_tool_input(tmp_path / "in.jsonl", rows=2)
    args = {
        "worker": ["worker", "--agent", AGENT_ONE],
        "sink": ["sink", "--output", str(tmp_path / "out.jsonl"), "--run-id", "r"],
        "produce": ["produce", str(data), "--rejects", str(tmp_path / "rejects.jsonl")],
    }[stage]
    result = gymstream(*args, env=env)

    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert f"error: cannot reach Kafka at {bootstrap}" in text, text
    assert "Traceback" not in text, text
    assert "Unclosed" not in text, text
