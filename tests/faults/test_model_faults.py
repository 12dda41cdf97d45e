"""Model faults on a real broker: a flaky model (5xx, hangs) and a model endpoint that is down.

Every rollout must end as exactly one output row or exactly one typed failure; an infrastructure
failure is never a reward. The worker must neither hang nor go quiet: its log says what is wrong.
"""

from __future__ import annotations

import re
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import (
    AGENT_ONE,
    QUICK_MODEL_ENV,
    cli_env,
    gymstream,
    read_jsonl,
    single_tool_input,
    spawn,
    start_worker,
    stop_gracefully,
    wait_until,
)

from gymstream.testing.thread import ScriptedThread, start_scripted_in_thread

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

ROWS, REPEATS = 40, 3
EXPECTED = {(AGENT_ONE, t, r) for t in range(ROWS) for r in range(REPEATS)}
MODEL_FAILURE_CLASSES = {"model_timeout", "model_http_5xx"}


def pipeline_env(bootstrap: str, model_url: str, **extra: str) -> dict[str, str]:
    """Environment for the CLI stages: short model timeout, quick retries."""
    return cli_env(bootstrap, model_url, **{**QUICK_MODEL_ENV, **extra})


def produce(env: dict[str, str], tmp_path: Path, run_id: str) -> None:
    applied = gymstream("topics", "apply", "--agent", AGENT_ONE, env=env)
    assert applied.returncode == 0, applied.stderr
    data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
    result = gymstream(
        "produce", str(data), "--num-repeats", str(REPEATS), "--run-id", run_id, env=env
    )
    assert result.returncode == 0, result.stderr


def run_pipeline(
    env: dict[str, str], tmp_path: Path, run_id: str, *, sink_code: int = 0
) -> tuple[str, str]:
    """Produce, run one worker until the sink has the whole run; return (sink out and err,
    worker log). ``sink_code``: the sink's exit code (1 when every rollout failed, 3 when
    some did)."""
    produce(env, tmp_path, run_id)
    log = tmp_path / "worker.log"
    worker = start_worker(AGENT_ONE, env, log, "--concurrency", "32")
    try:
        sink = gymstream(
            "sink", "--output", str(tmp_path / "out.jsonl"), "--run-id", run_id, env=env, timeout=90
        )
        assert sink.returncode == sink_code, sink.stdout + sink.stderr
    finally:
        # SIGTERM must end the worker well inside this timeout: nothing in it may hang
        code = stop_gracefully(worker, timeout=20)
    assert code == 0, log.read_text()
    return sink.stdout + sink.stderr, log.read_text()


def duplicates_dropped(summary: str) -> int:
    found = re.search(r"(\d+) duplicates dropped", summary)
    assert found, summary
    return int(found[1])


def key(row: dict[str, Any]) -> tuple[str, int, int]:
    return (row["agent_ref"]["name"], row["_ng_task_index"], row["_ng_rollout_index"])


def assert_accounted_once(
    rows: list[dict[str, Any]], failures: list[dict[str, Any]]
) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """Every expected rollout is in exactly one of the two files, once."""
    done, failed = [key(r) for r in rows], [key(f) for f in failures]
    assert len(done) == len(set(done)), f"{len(done) - len(set(done))} duplicate output rows"
    assert len(failed) == len(set(failed)), f"{len(failed) - len(set(failed))} duplicate failures"
    both = set(done) & set(failed)
    assert not both, f"{len(both)} rollouts both succeeded and failed, e.g. {sorted(both)[:3]}"
    assert set(done) | set(failed) == EXPECTED
    assert len(done) + len(failed) == len(EXPECTED)
    return done, failed


@pytest.fixture
def flaky_model() -> Iterator[ScriptedThread]:
    """20% of model calls answer 500/503, 5% never answer (past the 1 s client timeout)."""
    server = start_scripted_in_thread(latency_ms=5, error_rate=0.2, hang_rate=0.05, seed=7)
    try:
        yield server
    finally:
        server.stop()


def test_flaky_model_every_rollout_accounted_once(
    kafka_bootstrap: str, flaky_model: ScriptedThread, tmp_path: Path
) -> None:
    # one attempt per call: a rollout whose call fails while the model answers others gets one
    # more try as a whole (worker/outage.py), so failures still happen, typed
    env = pipeline_env(kafka_bootstrap, flaky_model.url, GYMSTREAM_RETRY_MAX_ATTEMPTS="1")
    # some rollouts fail, most succeed: the sink exits 3 (cli/exit_codes.py), not 0
    summary, _ = run_pipeline(env, tmp_path, "flaky", sink_code=3)

    rows = read_jsonl(tmp_path / "out.jsonl")
    failures = read_jsonl(tmp_path / "out_failures.jsonl")
    done, failed = assert_accounted_once(rows, failures)
    stats = flaky_model.server.stats
    assert stats["errors_injected"] > 0
    assert stats["hangs_injected"] > 0
    # 120 rollouts of two model calls, each failing with p = 0.25, a rollout failing twice with
    # p ~ 0.19: some rollouts fail and most succeed (the odds of neither are below 1e-6)
    assert failed, "no rollout failed although a quarter of the model calls did"
    assert done, "no rollout succeeded"
    classes = Counter(f["_ng_failure_class"] for f in failures)
    assert set(classes) <= MODEL_FAILURE_CLASSES, classes
    for failure in failures:
        assert "reward" not in failure, f"a failure carries a reward: {failure}"
        assert failure["_ng_failure_terminal"] is False  # a retry of the rollout may succeed
        assert failure["_gs_attempts"] == 1  # the retry budget was spent before giving up
        assert failure["_ng_failure_message"].startswith("model endpoint ")
    assert all(isinstance(r["reward"], int | float) for r in rows)
    assert f"{len(EXPECTED)} of {len(EXPECTED)} rollouts accounted for" in summary
    print(
        f"\nFAULT flaky model (20% 5xx, 5% hang): rollouts in {len(EXPECTED)}, out {len(done)}, "
        f"failures {len(failed)} {dict(classes)}, "
        f"duplicates dropped by the sink {duplicates_dropped(summary)}, in the output 0, "
        f"model calls {stats['requests']} (errors {stats['errors_injected']}, "
        f"hangs {stats['hangs_injected']})"
    )


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_model_endpoint_down_fails_fast_and_says_so(kafka_bootstrap: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    # down from the start and for longer than the outage budget: typed failures, as before
    env = pipeline_env(kafka_bootstrap, url, GYMSTREAM_RETRY_OUTAGE_BUDGET_S="1")
    summary, log = run_pipeline(env, tmp_path, "down", sink_code=1)
    # a complete run in which every rollout failed is not a success
    assert f"every rollout of run down failed ({len(EXPECTED)}: " in summary, summary

    rows = read_jsonl(tmp_path / "out.jsonl")
    failures = read_jsonl(tmp_path / "out_failures.jsonl")
    done, failed = assert_accounted_once(rows, failures)
    assert not done
    assert {f["_ng_failure_class"] for f in failures} == {"model_connection_error"}
    for failure in failures:
        assert "reward" not in failure
        assert url in failure["_ng_failure_message"]
    # the worker's log tells a human what is wrong, in words, once, not once per rollout
    assert f"model endpoint {url}/responses is unreachable" in log, log[-3000:]
    warnings = [x for x in log.splitlines() if "WARNING gymstream.worker." in x]
    assert len(warnings) < len(EXPECTED) // 4, "\n".join(warnings[:20])
    print(
        f"\nFAULT model endpoint down: rollouts in {len(EXPECTED)}, out {len(done)}, "
        f"failures {len(failed)} (model_connection_error), "
        f"duplicates dropped by the sink {duplicates_dropped(summary)}, in the output 0, "
        f"worker warnings {len(warnings)}"
    )


def test_model_restart_pauses_workers_and_fails_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The model dies after serving a third of the run and comes back once the worker has
    paused: no rollout fails (it used to turn most of the run into model_connection_error)."""
    model = start_scripted_in_thread(latency_ms=5)
    port = model.port
    env = pipeline_env(kafka_bootstrap, model.url)
    produce(env, tmp_path, "restart")
    log = tmp_path / "worker.log"
    worker = start_worker(AGENT_ONE, env, log, "--concurrency", "16")
    out = tmp_path / "out.jsonl"
    sink = spawn(["sink", "--output", str(out), "--run-id", "restart"], env, tmp_path / "sink.log")
    try:
        wait_until(lambda: model.server.stats["requests"] >= 80, 60, "a third of the requests")
        model.stop()
        wait_until(lambda: "pausing intake" in log.read_text(), 60, "the worker to pause")
        model = start_scripted_in_thread(port=port, latency_ms=5)  # back, same address
        assert sink.wait(timeout=90) == 0, (tmp_path / "sink.log").read_text()
    finally:
        code = stop_gracefully(worker, timeout=20)
        model.stop()
        if sink.poll() is None:
            sink.kill()
    text = log.read_text()
    assert code == 0, text
    rows, failures = read_jsonl(out), read_jsonl(tmp_path / "out_failures.jsonl")
    assert failures == []
    done, _ = assert_accounted_once(rows, failures)
    assert len(done) == len(EXPECTED)
    assert text.count("pausing intake") == 1, text[-3000:]
    assert text.count("answers again") == 1, text[-3000:]
