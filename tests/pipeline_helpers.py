"""Helpers for tests that run gymstream's commands as separate processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "environments"
AGENT_ONE = "example_single_tool_call_simple_agent"
AGENT_MULTI = "example_multi_step_simple_agent"
CLI = [sys.executable, "-m", "gymstream.cli.main"]


QUICK_MODEL_ENV = {
    "GYMSTREAM_MODEL_TIMEOUT_S": "1",
    "GYMSTREAM_MODEL_CONNECT_TIMEOUT_S": "1",
    "GYMSTREAM_RETRY_MAX_ATTEMPTS": "2",
    "GYMSTREAM_RETRY_BACKOFF_INITIAL_S": "0.05",
    "GYMSTREAM_RETRY_BACKOFF_MAX_S": "0.2",
    "GYMSTREAM_RETRY_ROLLOUT_DEADLINE_S": "30",
    "GYMSTREAM_WORKER_SHUTDOWN_GRACE_S": "5",
}
"""Model faults show quickly: a short model timeout, quick retries, a short grace."""


def cli_env(bootstrap: str, model_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a test's CLI stages: its own topic prefix (tests share one broker),
    the scripted model when given, quick commits; ``extra`` adds or overrides variables."""
    values = dict(os.environ)
    values.update(
        GYMSTREAM_KAFKA_BOOTSTRAP=bootstrap,
        GYMSTREAM_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}",
        GYMSTREAM_WORKER_COMMIT_INTERVAL_S="0.1",
    )
    if model_url is not None:
        values.update(GYMSTREAM_MODEL_BASE_URL=model_url, GYMSTREAM_MODEL_NAME="scripted")
    values.update(extra)
    return values


def gymstream(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one gymstream command to its end."""
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """Start a gymstream command in the background, its output going to ``log``."""
    handle = log.open("a")
    return subprocess.Popen(
        [*CLI, *args], env=env, stdout=handle, stderr=subprocess.STDOUT, text=True
    )


def start_worker(agent: str, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[str]:
    return spawn(["worker", "--agent", agent, "--verbose", *extra], env, log)


def stop_gracefully(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def kill_hard(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def single_tool_input(path: Path, rows: int) -> Path:
    """``rows`` distinct example_single_tool_call rows (distinct ids: distinct task indices)."""
    source = [
        json.loads(x)
        for x in (ENVS / "example_single_tool_call" / "data" / "example.jsonl")
        .read_text()
        .splitlines()
        if x.strip()
    ]
    with path.open("w") as handle:
        for i in range(rows):
            row = dict(source[i % len(source)], id=i)
            row["agent_ref"] = {"type": "responses_api_agents", "name": AGENT_ONE}
            handle.write(json.dumps(row) + "\n")
    return path


def multiverifier_input(path: Path) -> Path:
    lines = []
    for env, agent in (
        ("example_single_tool_call", AGENT_ONE),
        ("example_multi_step", AGENT_MULTI),
    ):
        for line in (ENVS / env / "data" / "example.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                row["agent_ref"] = {"type": "responses_api_agents", "name": agent}
                lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def last_assignment(log: Path) -> int:
    """How many partitions the worker's latest assignment gave it (-1: none yet)."""
    lines = [x for x in log.read_text().splitlines() if "assigned [" in x]
    if not lines:
        return -1
    return lines[-1].count("/")


def assert_exactly_once(rows: list[dict[str, Any]], expected: set[tuple[str, int, int]]) -> None:
    keys = [(r["agent_ref"]["name"], r["_ng_task_index"], r["_ng_rollout_index"]) for r in rows]
    dupes = len(keys) - len(set(keys))
    assert dupes == 0, f"{dupes} duplicate rows"
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} rollouts missing, e.g. {sorted(missing)[:5]}"
    assert set(keys) == expected


class WorkerRun:
    """What ``in_process_worker`` yields; ``stats`` is set once the worker has stopped."""

    stats: Any = None


@contextlib.asynccontextmanager
async def in_process_worker(
    kafka: Any, layout: Any, settings: Any, *, model_latency_ms: float = 0.0
) -> AsyncIterator[WorkerRun]:
    """One agent's worker (example_single_tool_call) in this event loop, against a scripted
    model in a thread; stopped (SIGTERM semantics: settle, commit, leave) on exit."""
    import asyncio

    from gymstream.nemo_gym.config.agents import load_config
    from gymstream.rollout.agent import LoopAgent
    from gymstream.rollout.environment import load_environment
    from gymstream.rollout.model.client import build_model_client
    from gymstream.rollout.sessions import InProcess
    from gymstream.settings import ModelSettings, RetrySettings
    from gymstream.testing.thread import start_scripted_in_thread
    from gymstream.worker.loop import run_worker

    server = start_scripted_in_thread(latency_ms=model_latency_ms)
    config = load_config()
    retry = RetrySettings()
    client = build_model_client(ModelSettings(base_url=server.url, name="s"), retry)
    stop = asyncio.Event()
    agent = config.agent(AGENT_ONE)
    task = asyncio.create_task(
        run_worker(
            kafka,
            layout,
            AGENT_ONE,
            LoopAgent(InProcess(load_environment(agent.environment)), client, "s", agent.max_steps),
            model_url=server.url,
            stop=stop,
            settings=settings,
            retry=retry,
        )
    )
    run = WorkerRun()
    try:
        yield run
    finally:
        stop.set()
        run.stats = await asyncio.wait_for(task, 30)
        await client.aclose()
        server.stop()


def child_pids(pid: int) -> set[int]:
    """The processes ``pid`` started (Linux /proc), or the empty set once it is gone."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(x) for x in text.split()}


def alive(pid: int) -> bool:
    """Running, not a zombie (a dead child that nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
