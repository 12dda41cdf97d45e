"""SIGTERM of a real `collect` (real broker, scripted model): it settles, writes what arrived,
says how to resume, and the resume gives every rollout exactly once."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest
from fixtures.model import ModelFactory
from fixtures.pipeline import (
    AGENT_ONE,
    alive,
    assert_exactly_once,
    child_pids,
    cli_env,
    count_lines,
    read_jsonl,
    single_tool_input,
    spawn,
    wait_until,
)
from fixtures.waits import wait_exit

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

ROWS, REPEATS = 20, 5
AT_SIGTERM = 10  # rows in the output when the signal is sent: mid-run, with rollouts in flight
EXPECTED = {(AGENT_ONE, t, r) for t in range(ROWS) for r in range(REPEATS)}
RESUME = "resume with the same --run-id "


@pytest.fixture
def env(kafka_bootstrap: str, make_scripted_model: ModelFactory) -> dict[str, str]:
    """A scripted model slow enough (30 ms per turn) that the run is still going at the
    signal; progress lines every 0.2 s (stderr is a file here, not a terminal)."""
    model = make_scripted_model(latency_ms=30)
    return cli_env(kafka_bootstrap, model.url, GYMSTREAM_PROGRESS_INTERVAL_S="0.2")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("worker_processes", [0, 1])
def test_sigterm_settles_and_the_resume_gives_every_rollout_once(
    env: dict[str, str], tmp_path: Path, worker_processes: int
) -> None:
    data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
    out = tmp_path / "out.jsonl"
    run_id = f"graceful-{worker_processes}"
    args = ["collect", "--input", str(data), "--output", str(out)]
    args += ["--num-repeats", str(REPEATS), "--run-id", run_id, "--concurrency", "4"]
    args += ["--worker-processes", str(worker_processes)]
    log = tmp_path / "collect.log"
    collect = spawn(args, env, log)
    try:
        wait_until(
            lambda: count_lines(out) >= AT_SIGTERM,
            60,
            f"{AT_SIGTERM} rows in the output",
            watch=[collect, out, log],
        )
        workers = child_pids(collect.pid) if worker_processes else set()
        collect.send_signal(signal.SIGTERM)
        code = wait_exit(collect, "collect to settle and exit", watch=[out, log])
    finally:
        if collect.poll() is None:
            collect.kill()
    text = log.read_text()
    assert code == 128 + signal.SIGTERM, text
    assert "Traceback" not in text, text
    assert "SIGTERM: stopping" in text, text
    assert f"collect {run_id}: " in text, text  # the progress line (not a terminal)
    assert "accounted for" in text, text  # the sink's summary was printed
    first = read_jsonl(out)  # what arrived was written, every line whole, none twice
    keys = {(r["agent_ref"]["name"], r["_ng_task_index"], r["_ng_rollout_index"]) for r in first}
    assert len(keys) == len(first)
    assert AT_SIGTERM <= len(first) < len(EXPECTED), len(first)
    if worker_processes:  # the signal reached the worker processes: they are gone
        assert workers
        wait_until(
            lambda: not any(alive(p) for p in workers), 60, "the workers to exit", watch=workers
        )
    # the line says how to resume: run exactly that command
    line = next(x for x in text.splitlines() if RESUME in x)
    assert f"{RESUME}{run_id}: gymstream " in line, line
    command = shlex.split(line.split(f"{RESUME}{run_id}: ", 1)[1])
    assert command[:2] == ["gymstream", "collect"], command
    resume_log = tmp_path / "resume.log"
    resumed = spawn(command[1:], env, resume_log)
    assert wait_exit(resumed, "the resume", watch=[out, resume_log]) == 0, resume_log.read_text()
    assert_exactly_once(read_jsonl(out), EXPECTED)
    assert count_lines(tmp_path / "out_failures.jsonl") == 0
