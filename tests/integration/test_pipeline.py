"""The multi-verifier scenario end to end through a real Kafka, stages as separate processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "nemo-gym-data"
ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "environments"
AGENT_ONE = "example_single_tool_call_simple_agent"
AGENT_MULTI = "example_multi_step_simple_agent"
NG_KEYS = {
    "responses_create_params",
    "response",
    "reward",
    "_ng_task_index",
    "_ng_rollout_index",
    "agent_ref",
}


def multiverifier_input(path: Path, copies: int = 1) -> Path:
    lines = []
    for _ in range(copies):
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


def gymstream(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gymstream.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def scripted_url() -> Iterator[str]:
    from gymstream.scripted_model import start_scripted_in_thread

    server = start_scripted_in_thread()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pipeline_env(kafka_bootstrap: str, scripted_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GYMSTREAM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        GYMSTREAM_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}",
        GYMSTREAM_MODEL_BASE_URL=scripted_url,
        GYMSTREAM_MODEL_NAME="scripted",
        GYMSTREAM_WORKER_COMMIT_INTERVAL_S="0.1",
    )
    return env


def start_worker(agent: str, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    handle = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "gymstream.cli.main", "worker", "--agent", agent, "--verbose"],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
    )


def last_assignment(log: Path) -> int:
    """How many partitions the worker's latest assignment gave it (-1: none yet)."""
    lines = [x for x in log.read_text().splitlines() if "assigned [" in x]
    if not lines:
        return -1
    return lines[-1].count("/")


def wait_for_assignments(logs: list[Path], partitions: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = [last_assignment(log) for log in logs]
        if all(c > 0 for c in counts) and sum(counts) == partitions:
            return
        time.sleep(0.1)
    raise AssertionError(f"workers not all assigned: {[log.read_text()[-2000:] for log in logs]}")


def stop_worker(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_multiverifier_separate_processes(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    env = pipeline_env
    applied = gymstream("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "created" in applied.stdout
    again = gymstream("topics", "apply", env=env)
    assert "created" not in again.stdout, again.stdout  # idempotent

    workers = [start_worker(a, env, tmp_path / f"{a}.log") for a in (AGENT_ONE, AGENT_MULTI)]
    try:
        data = multiverifier_input(tmp_path / "input.jsonl")
        produced = gymstream("produce", str(data), "--run-id", "r1", env=env)
        assert produced.returncode == 0, produced.stderr
        out = tmp_path / "out.jsonl"
        sink = gymstream("sink", "--output", str(out), "--run-id", "r1", env=env)
        assert sink.returncode == 0, sink.stderr + sink.stdout
    finally:
        codes = [stop_worker(w) for w in workers]
    assert codes == [0, 0], [(tmp_path / f"{a}.log").read_text() for a in (AGENT_ONE, AGENT_MULTI)]

    rows = read_jsonl(out)
    assert len(rows) == 10
    assert Counter(r["agent_ref"]["name"] for r in rows) == {AGENT_ONE: 5, AGENT_MULTI: 5}
    for row in rows:
        assert row.keys() >= NG_KEYS
        assert isinstance(row["reward"], float)
        assert row["response"]["output"][-1]["type"] == "message"
    singles = [r for r in rows if r["agent_ref"]["name"] == AGENT_ONE]
    assert all(r["reward"] == 1.0 for r in singles)
    assert all(any(i["type"] == "function_call" for i in r["response"]["output"]) for r in singles)
    multis = [r for r in rows if r["agent_ref"]["name"] == AGENT_MULTI]
    for row in multis:  # the verifier's fields and the row's own task fields survive
        assert {"accuracy", "set_overlap", "parsed_synonym_values"} <= row.keys()
        assert "expected_synonym_values" in row
        assert row["reward"] == float(row["accuracy"])
    keys = {(r["agent_ref"]["name"], r["_ng_task_index"], r["_ng_rollout_index"]) for r in rows}
    assert len(keys) == 10
    metrics = json.loads((tmp_path / "out_aggregate_metrics.json").read_text())
    assert metrics[AGENT_ONE]["metrics"]["reward"]["mean"] == 1.0


def test_two_workers_share_one_agent(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    env = pipeline_env
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [start_worker(AGENT_ONE, env, log) for log in logs]
    try:
        wait_for_assignments(logs, partitions=12)  # topics.yaml: 12 task partitions
        data = tmp_path / "one.jsonl"
        source = (ENVS / "example_single_tool_call" / "data" / "example.jsonl").read_text()
        # distinct rows so that task indices differ; 40 rows x 5 repeats
        rows = [json.loads(x) for x in source.splitlines() if x.strip()]
        with data.open("w") as handle:
            for i in range(40):
                row = dict(rows[i % len(rows)], id=i)
                handle.write(json.dumps(row) + "\n")
        produced = gymstream(
            "produce",
            str(data),
            "--agent-name",
            AGENT_ONE,
            "--num-repeats",
            "5",
            "--run-id",
            "r2",
            env=env,
        )
        assert produced.returncode == 0, produced.stderr
        out = tmp_path / "out.jsonl"
        sink = gymstream("sink", "--output", str(out), "--run-id", "r2", env=env)
        assert sink.returncode == 0, sink.stderr + sink.stdout
    finally:
        codes = [stop_worker(w) for w in workers]
    assert codes == [0, 0]
    taken = []
    for log in logs:
        text = log.read_text()
        line = next(x for x in text.splitlines() if "taken" in x)
        taken.append(int(line.split(":")[1].split("taken")[0].strip()))
    assert all(t > 0 for t in taken), taken  # both processes took work
    got = read_jsonl(out)
    keys = [(r["_ng_task_index"], r["_ng_rollout_index"]) for r in got]
    assert len(keys) == 200
    assert len(set(keys)) == 200  # no duplicate
    assert {k for k in keys} == {(t, r) for t in range(40) for r in range(5)}


def test_produce_reports_bad_rows_and_goes_on(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    env = pipeline_env
    assert gymstream("topics", "apply", env=env).returncode == 0
    good = (
        (ENVS / "example_single_tool_call" / "data" / "example.jsonl").read_text().splitlines()[0]
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(
            [
                good,
                "{not json",
                json.dumps({"responses_create_params": {"input": 5}}),
                json.dumps(
                    {
                        "responses_create_params": {"input": "hi"},
                        "agent_ref": {"name": "nope_agent"},
                    }
                ),
                good,
            ]
        )
        + "\n"
    )
    result = gymstream(
        "produce",
        str(bad),
        "--agent-name",
        AGENT_ONE,
        "--run-id",
        "r3",
        "--rejects",
        str(tmp_path / "rejects.jsonl"),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert f"{bad}:2:" in result.stderr
    assert f"{bad}:3: responses_create_params.input" in result.stderr
    assert f"{bad}:4: agent_ref.name" in result.stderr
    assert "Traceback" not in result.stderr
    assert "2 rollouts published" in " ".join(result.stdout.split())
    assert len(read_jsonl(tmp_path / "rejects.jsonl")) == 3

    stopped = gymstream(
        "produce",
        str(bad),
        "--agent-name",
        AGENT_ONE,
        "--run-id",
        "r4",
        "--fail-fast",
        "--rejects",
        str(tmp_path / "r2.jsonl"),
        env=env,
    )
    assert stopped.returncode == 2
    assert f"{bad}:2:" in stopped.stderr
    assert "Traceback" not in stopped.stderr
