"""The multi-verifier scenario end to end through a real Kafka, stages as separate processes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_helpers import (
    AGENT_MULTI,
    AGENT_ONE,
    ENVS,
    assert_exactly_once,
    cli_env,
    gymstream,
    last_assignment,
    multiverifier_input,
    read_jsonl,
    single_tool_input,
    start_worker,
    stop_gracefully,
    wait_until,
)

pytestmark = pytest.mark.kafka

NG_KEYS = {
    "responses_create_params",
    "response",
    "reward",
    "_ng_task_index",
    "_ng_rollout_index",
    "agent_ref",
}


@pytest.fixture
def scripted_url() -> Iterator[str]:
    from gymstream.testing.thread import start_scripted_in_thread

    server = start_scripted_in_thread()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pipeline_env(kafka_bootstrap: str, scripted_url: str) -> dict[str, str]:
    return cli_env(kafka_bootstrap, scripted_url)


def test_multiverifier_separate_processes(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    env = pipeline_env
    applied = gymstream("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "created" in applied.stdout
    again = gymstream("topics", "apply", env=env)
    assert "created" not in again.stdout, again.stdout  # idempotent

    logs = [tmp_path / f"{a}.log" for a in (AGENT_ONE, AGENT_MULTI)]
    workers = [
        start_worker(a, env, log) for a, log in zip((AGENT_ONE, AGENT_MULTI), logs, strict=True)
    ]
    try:
        data = multiverifier_input(tmp_path / "input.jsonl")
        produced = gymstream("produce", str(data), "--run-id", "r1", env=env)
        assert produced.returncode == 0, produced.stderr
        out = tmp_path / "out.jsonl"
        sink = gymstream("sink", "--output", str(out), "--run-id", "r1", env=env)
        assert sink.returncode == 0, sink.stderr + sink.stdout
    finally:
        codes = [stop_gracefully(w) for w in workers]
    assert codes == [0, 0], [log.read_text() for log in logs]

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
    assert_exactly_once(
        rows, {(AGENT_ONE, t, 0) for t in range(5)} | {(AGENT_MULTI, t, 0) for t in range(5, 10)}
    )
    metrics = json.loads((tmp_path / "out_aggregate_metrics.json").read_text())
    assert metrics[AGENT_ONE]["metrics"]["reward"]["mean"] == 1.0


def test_two_workers_share_one_agent(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    env = pipeline_env
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [start_worker(AGENT_ONE, env, log) for log in logs]
    try:

        def both_assigned() -> bool:
            counts = [last_assignment(log) for log in logs]
            return all(c > 0 for c in counts) and sum(counts) == 12  # topics.yaml: 12

        wait_until(both_assigned, 60, "both workers to hold partitions")
        data = single_tool_input(tmp_path / "one.jsonl", rows=40)
        produced = gymstream("produce", str(data), "--num-repeats", "5", "--run-id", "r2", env=env)
        assert produced.returncode == 0, produced.stderr
        out = tmp_path / "out.jsonl"
        sink = gymstream("sink", "--output", str(out), "--run-id", "r2", env=env)
        assert sink.returncode == 0, sink.stderr + sink.stdout
    finally:
        codes = [stop_gracefully(w) for w in workers]
    assert codes == [0, 0]
    taken = []
    for log in logs:
        line = next(x for x in log.read_text().splitlines() if " taken," in x)
        taken.append(int(line.split(":")[1].split("taken")[0].strip()))
    assert all(t > 0 for t in taken), taken  # both processes took work
    assert sum(taken) >= 200
    assert_exactly_once(read_jsonl(out), {(AGENT_ONE, t, r) for t in range(40) for r in range(5)})


def test_produce_reports_bad_rows_and_goes_on(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    env = pipeline_env
    assert gymstream("topics", "apply", env=env).returncode == 0
    source = ENVS / "example_single_tool_call" / "data" / "example.jsonl"
    good = source.read_text().splitlines()[0]
    bad = tmp_path / "bad.jsonl"
    lines = [
        good,
        "{not json",
        json.dumps({"responses_create_params": {"input": 5}}),
        json.dumps(
            {"responses_create_params": {"input": "hi"}, "agent_ref": {"name": "nope_agent"}}
        ),
        good,
    ]
    bad.write_text("\n".join(lines) + "\n")
    common = ["--agent-name", AGENT_ONE, "--rejects", str(tmp_path / "rejects.jsonl")]
    result = gymstream("produce", str(bad), *common, "--run-id", "r3", env=env)
    assert result.returncode == 3, result.stderr  # completed, rows rejected
    assert f"{bad}:2:" in result.stderr
    assert f"{bad}:3: responses_create_params.input" in result.stderr
    assert f"{bad}:4: agent_ref.name" in result.stderr
    assert "Traceback" not in result.stderr
    assert "2 rollouts published" in " ".join(result.stdout.split())
    assert len(read_jsonl(tmp_path / "rejects.jsonl")) == 3

    stopped = gymstream("produce", str(bad), *common, "--run-id", "r4", "--fail-fast", env=env)
    assert stopped.returncode == 2
    assert f"{bad}:2:" in stopped.stderr
    assert "Traceback" not in stopped.stderr


def test_collect_with_worker_processes(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    data = multiverifier_input(tmp_path / "input.jsonl")
    out = tmp_path / "out.jsonl"
    result = gymstream(
        "collect",
        "-i",
        str(data),
        "-o",
        str(out),
        "--worker-processes",
        "1",
        "--no-progress",
        env=pipeline_env,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    rows = read_jsonl(out)
    assert_exactly_once(
        rows, {(AGENT_ONE, t, 0) for t in range(5)} | {(AGENT_MULTI, t, 0) for t in range(5, 10)}
    )
    assert len(read_jsonl(tmp_path / "out_materialized_inputs.jsonl")) == 10
