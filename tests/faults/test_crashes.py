"""Fault injection on a real broker: kill -9 workers and the sink mid-run; none lost, no dupes."""

from __future__ import annotations

import signal
import subprocess
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
    gymstream,
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
from fixtures.waits import Watched, wait_exit

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

ROWS, REPEATS = 20, 5
EXPECTED = {(AGENT_ONE, t, r) for t in range(ROWS) for r in range(REPEATS)}
STEP = 12
"""Rows a restarted stage writes before it is killed again: more than a few (the kill lands
with rollouts in flight and results not yet committed), far fewer than the run."""


@pytest.fixture
def env(kafka_bootstrap: str, make_scripted_model: ModelFactory) -> dict[str, str]:
    # a model slow enough (30 ms per turn) that a run can be interrupted mid-way; the broker's
    # minimum session timeout (group.min.session.timeout.ms): a killed worker's partitions move
    # to the restarted one after this long
    model = make_scripted_model(latency_ms=30)
    return cli_env(kafka_bootstrap, model.url, GYMSTREAM_WORKER_SESSION_TIMEOUT_MS="6000")


def produce(env: dict[str, str], tmp_path: Path, run_id: str) -> None:
    publish_run(env, single_tool_input(tmp_path / "in.jsonl", rows=ROWS), run_id, REPEATS)


def kill_after_progress(
    proc: subprocess.Popen[str], out: Path, watch: list[Watched], what: str, *, mid_run: bool
) -> None:
    """Wait until ``STEP`` more rows are in ``out`` (or all of them), then kill -9 ``proc``.

    ``mid_run``: the run must still be going at the kill (a worker killed with rollouts in
    flight). A sink restarted late may find every result waiting and write them in one batch:
    what counts there is that it wrote (and maybe committed) before its kill."""
    target = min(count_lines(out) + STEP, len(EXPECTED))
    wait_until(lambda: count_lines(out) >= target, 60, f"{target} rows", watch=[proc, out, *watch])
    kill_hard(proc)
    if mid_run:
        assert count_lines(out) < len(EXPECTED), f"{what} was killed after the run had ended"


def test_worker_killed_repeatedly(env: dict[str, str], tmp_path: Path) -> None:
    produce(env, tmp_path, "k1")
    out = tmp_path / "out.jsonl"
    sink_log = tmp_path / "sink.log"
    sink = spawn(["sink", "--output", str(out), "--run-id", "k1"], env, sink_log)
    logs = [tmp_path / f"worker-{n}.log" for n in range(4)]
    worker = start_worker(AGENT_ONE, env, logs[0], "--concurrency", "16")
    try:
        for kill in range(3):  # kill -9 the worker three times, each time mid-run
            # its replacement starts now: its start-up (seconds of imports) overlaps this
            # worker's run and the session timeout the group waits out after the kill
            wait_until(
                lambda: last_assignment(logs[kill]) > 0,  # noqa: B023 (called in this iteration)
                60,
                f"worker {kill}'s partitions",
                watch=[worker, logs[kill], sink, sink_log],
            )
            replacement = start_worker(AGENT_ONE, env, logs[kill + 1], "--concurrency", "16")
            kill_after_progress(
                worker, out, [logs[kill], sink, sink_log], f"worker {kill}", mid_run=True
            )
            worker = replacement
        code = wait_exit(sink, "the sink to finish", watch=[worker, out, sink_log, logs[3]])
        assert code == 0, sink_log.read_text()
        assert stop_gracefully(worker, watch=[logs[3]]) == 0
    finally:
        for proc in (sink, worker):
            if proc.poll() is None:
                kill_hard(proc)
    assert_exactly_once(read_jsonl(out), EXPECTED)
    assert count_lines(tmp_path / "out_failures.jsonl") == 0


def test_sink_killed_mid_write(env: dict[str, str], tmp_path: Path) -> None:
    produce(env, tmp_path, "k2")
    out = tmp_path / "out.jsonl"
    worker_log = tmp_path / "worker.log"
    worker = start_worker(AGENT_ONE, env, worker_log, "--concurrency", "16")
    try:
        for kill in range(2):  # kill -9 the sink twice, each time mid-write
            log = tmp_path / f"sink-{kill}.log"
            sink = spawn(["sink", "--output", str(out), "--run-id", "k2"], env, log)
            kill_after_progress(sink, out, [log, worker, worker_log], f"sink {kill}", mid_run=False)
        # simulate the worst moment of a crash: half a line written, no newline
        with out.open("ab") as handle:
            handle.write(b'{"torn": tr')
        final = gymstream("sink", "--output", str(out), "--run-id", "k2", env=env)
        assert final.returncode == 0, final.stderr + final.stdout
    finally:
        assert stop_gracefully(worker, watch=[worker_log]) == 0
    rows = read_jsonl(out)  # every line parses: the torn tail was cut
    assert_exactly_once(rows, EXPECTED)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_collect_killed_takes_its_worker_processes_and_leaves_no_temp_files(
    env: dict[str, str], tmp_path: Path
) -> None:
    """kill -9 of `collect --worker-processes 2` used to leave both workers running, and a
    gymstream-workers-* directory in the temp dir."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
    out = tmp_path / "out.jsonl"
    collect = spawn(
        [
            *["collect", "--input", str(data), "--output", str(out)],
            *["--num-repeats", str(REPEATS), "--worker-processes", "2", "--no-progress"],
        ],
        {**env, "TMPDIR": str(temp)},
        tmp_path / "collect.log",
    )
    try:
        wait_until(
            lambda: count_lines(out) >= 20, 60, "20 rows written by collect", watch=[collect, out]
        )
        workers = child_pids(collect.pid)
        assert len(workers) >= 2, workers
    finally:
        kill_hard(collect)
    wait_until(lambda: not any(alive(p) for p in workers), 60, "the workers to stop", watch=workers)
    assert list(temp.iterdir()) == []


def test_a_second_sink_on_a_held_output_says_who_holds_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """One writer per output: a zombie sink (SIGSTOP) still holds its output, so a second sink
    cannot write rows the first had fetched (601 rows for 600 before)."""
    out = tmp_path / "out.jsonl"
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    # no manifest for this run: the first sink waits, holding the output
    first = spawn(["sink", "--output", str(out), "--run-id", "held"], env, tmp_path / "a.log")
    lock = tmp_path / "out.lock"
    try:
        wait_until(
            lambda: f"pid {first.pid} " in _text(lock),
            60,
            "the first sink's lock",
            watch=[first, tmp_path / "a.log"],
        )
        first.send_signal(signal.SIGSTOP)
        second = gymstream("sink", "--output", str(out), "--run-id", "held", env=env)
        text = second.stdout + second.stderr
        assert second.returncode == 2, text
        assert "Traceback" not in text, text
        assert f"{out} is being written by pid {first.pid} on " in text, text
        first.send_signal(signal.SIGCONT)
    finally:
        first.send_signal(signal.SIGCONT)
        stop_gracefully(first)
    # gone (however it ended), its lock went with it
    again = spawn(["sink", "--output", str(out), "--run-id", "held"], env, tmp_path / "c.log")
    try:
        wait_until(
            lambda: f"pid {again.pid} " in _text(lock),
            60,
            "the next sink's lock",
            watch=[again, tmp_path / "c.log"],
        )
    finally:
        stop_gracefully(again)


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def test_a_resume_does_not_republish_tasks_still_waiting(
    env: dict[str, str], tmp_path: Path
) -> None:
    """No worker has taken the run's tasks yet; producing it again with the same --run-id and
    --output (a resume) published them all a second time, to run twice."""
    from fixtures.topics import read_all

    from gymstream.kafka.topics import load_layout
    from gymstream.wire.codec import DECODE_TASK

    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    data = single_tool_input(tmp_path / "in.jsonl", rows=4)
    args = ["produce", str(data), "--num-repeats", "2", "--run-id", "wait"]
    args += ["--output", str(tmp_path / "out.jsonl")]
    first = gymstream(*args, env=env)
    assert first.returncode == 0, first.stderr
    again = gymstream(*args, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 rollouts published" in again.stdout + again.stderr, again.stdout
    topic = load_layout(None, env["GYMSTREAM_TOPIC_PREFIX"]).tasks(AGENT_ONE)
    tasks = [DECODE_TASK.decode(v) for v in await read_all(env["GYMSTREAM_KAFKA_BOOTSTRAP"], topic)]
    ids = [t.rollout_id for t in tasks if t.run_id == "wait"]
    assert len(ids) == len(set(ids)) == 8
