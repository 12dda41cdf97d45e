"""A zombie worker: SIGSTOPped past its session timeout, its partitions go to another worker;
SIGCONTed, it says so in one line (not a commit warning every 200 ms blaming
``max_poll_interval_ms``), and the output still has every rollout exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_helpers import read_all
from pipeline_helpers import (
    AGENT_ONE,
    assert_exactly_once,
    cli_env,
    count_lines,
    gymstream,
    last_assignment,
    read_jsonl,
    single_tool_input,
    spawn,
    start_worker,
    stop_gracefully,
    wait_until,
)

from gymstream.kafka.topics import load_layout
from gymstream.testing.thread import start_scripted_in_thread

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

ROWS, REPEATS = 40, 5  # at 100 ms per turn, 2 + 2 in flight: the run lasts ~10 s
EXPECTED = {(AGENT_ONE, t, r) for t in range(ROWS) for r in range(REPEATS)}
FENCED = "no longer owns those partitions"


@pytest.fixture
def model_url() -> Iterator[str]:
    server = start_scripted_in_thread(latency_ms=100)
    try:
        yield server.url
    finally:
        server.stop()


def test_a_stopped_worker_whose_partitions_moved_says_so_once(
    kafka_bootstrap: str, model_url: str, tmp_path: Path
) -> None:
    # every model call here (100 ms) counts as slow: a streak the workers must say once
    env = cli_env(
        kafka_bootstrap,
        model_url,
        GYMSTREAM_WORKER_SESSION_TIMEOUT_MS="6000",
        GYMSTREAM_WORKER_SLOW_MODEL_CALL_S="0.05",
    )
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
    produced = gymstream(
        "produce", str(data), "--num-repeats", str(REPEATS), "--run-id", "z1", env=env
    )
    assert produced.returncode == 0, produced.stderr
    out = tmp_path / "out.jsonl"
    sink_log, zombie_log, other_log = (tmp_path / n for n in ("sink.log", "a.log", "b.log"))
    sink = spawn(["sink", "--output", str(out), "--run-id", "z1"], env, sink_log)
    zombie = start_worker(AGENT_ONE, env, zombie_log, "--concurrency", "2")
    other = None
    try:
        wait_until(lambda: last_assignment(zombie_log) > 0, 60, "worker A's assignment")
        other = start_worker(AGENT_ONE, env, other_log, "--concurrency", "2")
        wait_until(lambda: last_assignment(other_log) > 0, 60, "the group to share the tasks")
        wait_until(lambda: count_lines(out) >= 20, 60, "20 rows in the output")
        shared = last_assignment(other_log)
        os.kill(zombie.pid, signal.SIGSTOP)  # with rollouts in flight and offsets open
        # progress, not a sleep: the group gives A's partitions to B after the session timeout
        wait_until(lambda: last_assignment(other_log) > shared, 60, "B to take A's partitions")
        os.kill(zombie.pid, signal.SIGCONT)
        assert sink.wait(timeout=120) == 0, sink_log.read_text()[-3000:]
        assert stop_gracefully(zombie, timeout=30) == 0, zombie_log.read_text()[-3000:]
        assert stop_gracefully(other, timeout=30) == 0, other_log.read_text()[-3000:]
    finally:
        for proc in (sink, zombie, other):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait(10)
    assert_exactly_once(read_jsonl(out), EXPECTED)
    assert count_lines(tmp_path / "out_failures.jsonl") == 0
    text = zombie_log.read_text()
    said = [line for line in text.splitlines() if FENCED in line]
    assert len(said) == 1, text[-3000:]
    assert "this worker was stopped for" in said[0]
    assert "gave its partitions to other workers" in said[0]
    assert "max_poll_interval_ms" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    for log in (zombie_log, other_log):
        slow = [x for x in log.read_text().splitlines() if "model calls slower than" in x]
        assert len(slow) == 1, slow
        assert "model calls slower than 0.05 s: 3 in the last minute" in slow[0]


def test_a_thawed_zombie_publishes_no_stale_deadline_failure(
    kafka_bootstrap: str, model_url: str, tmp_path: Path
) -> None:
    """Issue 19 item 7a, deterministic: worker A is frozen with rollouts in flight until B
    holds its partitions; the freeze (past the 6 s session timeout) is longer than the rollout
    deadline (3 s), so on SIGCONT every rollout A had in flight is past its deadline at once.
    It used to publish a ``rollout_deadline`` failure for each, one of which could stand for a
    rollout B ran (399 successes + 1 failure). Now nothing reaches the failures topic."""
    env = cli_env(
        kafka_bootstrap,
        model_url,
        GYMSTREAM_WORKER_SESSION_TIMEOUT_MS="6000",
        GYMSTREAM_RETRY_ROLLOUT_DEADLINE_S="3",
    )
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
    produced = gymstream(
        "produce", str(data), "--num-repeats", str(REPEATS), "--run-id", "z2", env=env
    )
    assert produced.returncode == 0, produced.stderr
    out = tmp_path / "out.jsonl"
    sink_log, zombie_log, other_log = (tmp_path / n for n in ("sink.log", "a.log", "b.log"))
    sink = spawn(["sink", "--output", str(out), "--run-id", "z2"], env, sink_log)
    zombie = start_worker(AGENT_ONE, env, zombie_log, "--concurrency", "2")
    other = None
    try:
        wait_until(lambda: last_assignment(zombie_log) > 0, 60, "worker A's assignment")
        other = start_worker(AGENT_ONE, env, other_log, "--concurrency", "2")
        wait_until(lambda: last_assignment(other_log) > 0, 60, "the group to share the tasks")
        wait_until(lambda: count_lines(out) >= 20, 60, "20 rows in the output")
        shared = last_assignment(other_log)
        # A takes tasks again after that rebalance (it is idle only until its first fetch):
        # rows keep arriving from both, so A has rollouts in flight when it is stopped
        settled = count_lines(out)
        wait_until(lambda: count_lines(out) >= settled + 10, 60, "10 more rows")
        os.kill(zombie.pid, signal.SIGSTOP)  # with rollouts in flight and offsets open
        wait_until(lambda: last_assignment(other_log) > shared, 60, "B to take A's partitions")
        os.kill(zombie.pid, signal.SIGCONT)
        assert sink.wait(timeout=120) == 0, sink_log.read_text()[-3000:]
        assert stop_gracefully(zombie, timeout=30) == 0, zombie_log.read_text()[-3000:]
        assert stop_gracefully(other, timeout=30) == 0, other_log.read_text()[-3000:]
    finally:
        for proc in (sink, zombie, other):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait(10)
    assert_exactly_once(read_jsonl(out), EXPECTED)
    layout = load_layout(None, env["GYMSTREAM_TOPIC_PREFIX"])
    published = asyncio.run(read_all(kafka_bootstrap, layout.failures, timeout_s=10))
    assert published == [], [m[:300] for m in published]
    assert count_lines(tmp_path / "out_failures.jsonl") == 0
    assert count_lines(tmp_path / "out_failures_history.jsonl") == 0
    assert "deadline passed while frozen" in zombie_log.read_text()
