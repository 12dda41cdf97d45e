"""A zombie worker: SIGSTOPped past its session timeout, its partitions go to another worker;
SIGCONTed, it says so in one line (not a commit warning every 200 ms blaming
``max_poll_interval_ms``), and the output still has every rollout exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from fixtures.model import ModelFactory
from fixtures.pipeline import (
    AGENT_ONE,
    assert_exactly_once,
    cli_env,
    count_lines,
    kill_hard,
    last_assignment,
    publish_run,
    read_jsonl,
    single_tool_input,
    spawn,
    start_worker,
    stop_gracefully,
    wait_until,
)
from fixtures.topics import read_all
from fixtures.waits import Watched, wait_exit

from gymstream.kafka.topics import load_layout

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

ROWS, REPEATS = 20, 5  # at 100 ms per turn, 2 + 2 in flight: the run lasts ~5 s of model time
STEP = 6  # rows written once both workers have partitions, before A is stopped
SESSION_TIMEOUT_MS = 6000  # the broker's group.min.session.timeout.ms
EXPECTED = {(AGENT_ONE, t, r) for t in range(ROWS) for r in range(REPEATS)}
ZOMBIE_ROWS = 40  # the thawed-zombie test stops A after 30 rows: the run must still be going
ZOMBIE_EXPECTED = {(AGENT_ONE, t, r) for t in range(ZOMBIE_ROWS) for r in range(REPEATS)}
FENCED = "no longer owns those partitions"


@pytest.fixture
def model_url(make_scripted_model: ModelFactory) -> str:
    return make_scripted_model(latency_ms=100).url


def test_a_stopped_worker_whose_partitions_moved_says_so_once(
    kafka_bootstrap: str, make_scripted_model: ModelFactory, tmp_path: Path
) -> None:
    # every model call here (100 ms) counts as slow: a streak the workers must say once
    env = cli_env(
        kafka_bootstrap,
        make_scripted_model(latency_ms=100).url,
        GYMSTREAM_WORKER_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS),
        GYMSTREAM_WORKER_SLOW_MODEL_CALL_S="0.05",
    )
    publish_run(env, single_tool_input(tmp_path / "in.jsonl", rows=ROWS), "z1", REPEATS)
    out = tmp_path / "out.jsonl"
    sink_log, zombie_log, other_log = (tmp_path / n for n in ("sink.log", "a.log", "b.log"))
    sink = spawn(["sink", "--output", str(out), "--run-id", "z1"], env, sink_log)
    # both start together (one start-up's wait, not two); the group shares the tasks
    zombie = start_worker(AGENT_ONE, env, zombie_log, "--concurrency", "2")
    other = start_worker(AGENT_ONE, env, other_log, "--concurrency", "2")
    try:
        watch: list[Watched] = [sink, zombie, other, out, sink_log, zombie_log, other_log]
        wait_until(
            lambda: last_assignment(zombie_log) > 0 and last_assignment(other_log) > 0,
            60,
            "the group to share the tasks",
            watch=watch,
        )
        target = count_lines(out) + STEP
        wait_until(
            lambda: count_lines(out) >= target, 60, f"{target} rows in the output", watch=watch
        )
        shared = last_assignment(other_log)
        os.kill(zombie.pid, signal.SIGSTOP)  # with rollouts in flight and offsets open
        stopped = time.monotonic()
        assert count_lines(out) < len(EXPECTED), "A was stopped after the run had ended"
        # progress, not a sleep: the group gives A's partitions to B after the session timeout
        # (A, stopped, uses no CPU: B's log and CPU are the progress). The session counts from
        # A's last heartbeat, before the stop: B can have them before A has been stopped a whole
        # session timeout, and a shorter freeze is not one A's stall watch must name. So A stays
        # stopped until both hold: what the scenario is (stopped past its session timeout).
        wait_until(
            lambda: (
                last_assignment(other_log) > shared
                and time.monotonic() - stopped > SESSION_TIMEOUT_MS / 1000 + 0.5
            ),
            60,
            "B to take A's partitions, A stopped past its session timeout",
            watch=[other, other_log, sink, out],
        )
        os.kill(zombie.pid, signal.SIGCONT)
        code = wait_exit(sink, "the sink to finish", watch=watch)
        assert code == 0, sink_log.read_text()[-3000:]
        assert stop_gracefully(zombie) == 0, zombie_log.read_text()[-3000:]
        assert stop_gracefully(other) == 0, other_log.read_text()[-3000:]
    finally:
        for proc in (sink, zombie, other):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                kill_hard(proc)
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
    publish_run(env, single_tool_input(tmp_path / "in.jsonl", rows=ZOMBIE_ROWS), "z2", REPEATS)
    out = tmp_path / "out.jsonl"
    sink_log, zombie_log, other_log = (tmp_path / n for n in ("sink.log", "a.log", "b.log"))
    sink = spawn(["sink", "--output", str(out), "--run-id", "z2"], env, sink_log)
    zombie = start_worker(AGENT_ONE, env, zombie_log, "--concurrency", "2")
    other = None
    try:
        watch: list[Watched] = [sink, zombie, out, sink_log, zombie_log]
        wait_until(
            lambda: last_assignment(zombie_log) > 0, 60, "worker A's assignment", watch=watch
        )
        other = start_worker(AGENT_ONE, env, other_log, "--concurrency", "2")
        watch += [other, other_log]
        wait_until(
            lambda: last_assignment(other_log) > 0, 60, "the group to share the tasks", watch=watch
        )
        wait_until(lambda: count_lines(out) >= 20, 60, "20 rows in the output", watch=watch)
        shared = last_assignment(other_log)
        # A takes tasks again after that rebalance (it is idle only until its first fetch):
        # rows keep arriving from both, so A has rollouts in flight when it is stopped
        settled = count_lines(out)
        wait_until(lambda: count_lines(out) >= settled + 10, 60, "10 more rows", watch=watch)
        os.kill(zombie.pid, signal.SIGSTOP)  # with rollouts in flight and offsets open
        wait_until(
            lambda: last_assignment(other_log) > shared,
            60,
            "B to take A's partitions",
            watch=[other, other_log, sink, out],
        )
        os.kill(zombie.pid, signal.SIGCONT)
        code = wait_exit(sink, "the sink to finish", watch=watch)
        assert code == 0, sink_log.read_text()[-3000:]
        assert stop_gracefully(zombie) == 0, zombie_log.read_text()[-3000:]
        assert stop_gracefully(other) == 0, other_log.read_text()[-3000:]
    finally:
        for proc in (sink, zombie, other):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                kill_hard(proc)
    assert_exactly_once(read_jsonl(out), ZOMBIE_EXPECTED)
    layout = load_layout(None, env["GYMSTREAM_TOPIC_PREFIX"])
    published = asyncio.run(read_all(kafka_bootstrap, layout.failures, timeout_s=10))
    assert published == [], [m[:300] for m in published]
    assert count_lines(tmp_path / "out_failures.jsonl") == 0
    assert count_lines(tmp_path / "out_failures_history.jsonl") == 0
    assert "deadline passed while frozen" in zombie_log.read_text()
