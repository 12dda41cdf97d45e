"""Resume and retry-failures: only what the output lacks is redone; outputs are never clobbered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_helpers import (
    AGENT_ONE,
    assert_exactly_once,
    cli_env,
    gymstream,
    read_jsonl,
    single_tool_input,
    start_worker,
    stop_gracefully,
)

pytestmark = pytest.mark.kafka
EXPECTED = {(AGENT_ONE, t, 0) for t in range(6)}


@pytest.fixture
def model_url() -> Iterator[str]:
    from gymstream.testing.thread import start_scripted_in_thread

    server = start_scripted_in_thread()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    return cli_env(
        kafka_bootstrap,
        GYMSTREAM_MODEL_NAME="scripted",
        GYMSTREAM_RETRY_MAX_ATTEMPTS="2",
        GYMSTREAM_RETRY_BACKOFF_INITIAL_S="0.01",
        GYMSTREAM_RETRY_BACKOFF_MAX_S="0.05",
    )


def fail_everything(env: dict[str, str], data: Path, out: Path, run_id: str) -> None:
    # the model answers GET /models (so collect's check before publishing passes) but fails
    # every request for longer than the outage budget: typed failures, and a run in which
    # every rollout failed is not a success (exit 1)
    from gymstream.testing.thread import start_scripted_in_thread

    failing = start_scripted_in_thread(error_rate=1.0)
    down = {**env, "GYMSTREAM_MODEL_BASE_URL": failing.url, "GYMSTREAM_RETRY_OUTAGE_BUDGET_S": "1"}
    try:
        result = gymstream(
            "collect", "-i", str(data), "-o", str(out), "--run-id", run_id, "--no-progress",
            env=down,
        )  # fmt: skip
    finally:
        failing.stop()
    assert result.returncode == 1, result.stderr + result.stdout
    assert f"every rollout of run {run_id} failed" in result.stderr + result.stdout
    assert read_jsonl(out) == []
    failures = read_jsonl(out.with_name(f"{out.stem}_failures.jsonl"))
    assert len(failures) == 6
    assert {f["_ng_failure_class"] for f in failures} == {"model_http_5xx"}
    assert all(f["_ng_failure_terminal"] is False for f in failures)
    assert all("reward" not in f for f in failures)  # never a reward of 0


def test_collect_resume_redoes_only_the_failures(
    env: dict[str, str], model_url: str, tmp_path: Path
) -> None:
    data = single_tool_input(tmp_path / "in.jsonl", rows=6)
    out = tmp_path / "out.jsonl"
    fail_everything(env, data, out, "run-a")

    other = gymstream(
        "collect",
        "-i",
        str(data),
        "-o",
        str(out),
        "--run-id",
        "run-b",
        "--no-progress",
        env={**env, "GYMSTREAM_MODEL_BASE_URL": model_url},
    )
    assert other.returncode == 2
    assert "run-a" in other.stderr
    assert "Traceback" not in other.stderr

    again = gymstream(
        "collect",
        "-i",
        str(data),
        "-o",
        str(out),
        "--run-id",
        "run-a",
        "--no-progress",
        env={**env, "GYMSTREAM_MODEL_BASE_URL": model_url},
    )
    assert again.returncode == 0, again.stderr + again.stdout
    assert_exactly_once(read_jsonl(out), EXPECTED)
    assert read_jsonl(tmp_path / "out_failures.jsonl") == []
    assert len(read_jsonl(tmp_path / "out_failures_history.jsonl")) == 6

    # a third run publishes nothing: everything is in the output
    third = gymstream(
        "collect",
        "-i",
        str(data),
        "-o",
        str(out),
        "--run-id",
        "run-a",
        "--no-progress",
        env={**env, "GYMSTREAM_MODEL_BASE_URL": model_url},
    )
    assert third.returncode == 0, third.stderr
    assert "0 rollouts published" in " ".join(third.stdout.split())
    assert_exactly_once(read_jsonl(out), EXPECTED)


def test_retry_failures_republishes_with_the_next_attempt(
    env: dict[str, str], model_url: str, tmp_path: Path
) -> None:
    data = single_tool_input(tmp_path / "in.jsonl", rows=6)
    out = tmp_path / "out.jsonl"
    fail_everything(env, data, out, "run-c")
    up = {**env, "GYMSTREAM_MODEL_BASE_URL": model_url}
    # the collect ran in its private namespace: the shared one's workers need their topics
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=up).returncode == 0
    worker = start_worker(AGENT_ONE, up, tmp_path / "worker.log")
    try:
        retried = gymstream("retry-failures", "--run-id", "run-c", "-o", str(out), env=up)
        assert retried.returncode == 0, retried.stderr
        assert "republished 6" in retried.stdout
        sink = gymstream("sink", "-o", str(out), "--run-id", "run-c", env=up)
        assert sink.returncode == 0, sink.stderr + sink.stdout
    finally:
        assert stop_gracefully(worker) == 0
    assert_exactly_once(read_jsonl(out), EXPECTED)
    assert read_jsonl(tmp_path / "out_failures.jsonl") == []
    nothing = gymstream("retry-failures", "--run-id", "run-c", "-o", str(out), env=up)
    assert "nothing to retry" in nothing.stdout
