"""`gymstream status` shows a worker's model outage while it lasts, on a real broker (issue 19).

The worker's model is down from the start (nothing listens on its port): the worker pauses
intake and publishes the outage on the runs topic; status says "model down for N s, intake
paused" beside the agent. When the model answers again the worker publishes the end (a
tombstone) and status no longer shows it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import (
    AGENT_ONE,
    QUICK_MODEL_ENV,
    cli_env,
    gymstream,
    publish_run,
    single_tool_input,
    start_worker,
    stop_gracefully,
    wait_until,
)

from gymstream.testing.thread import start_scripted_in_thread

pytestmark = [pytest.mark.kafka, pytest.mark.faults]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def agent_status(env: dict[str, str], run_id: str) -> dict[str, Any]:
    shown = gymstream("status", "--run-id", run_id, "--json", env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    [run] = json.loads(shown.stdout)["runs"]
    [agent] = run["agents"]
    return dict(agent)


def test_status_shows_a_model_outage_while_it_lasts(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = closed_port()
    env = cli_env(
        kafka_bootstrap,
        f"http://127.0.0.1:{port}/v1",
        **{
            **QUICK_MODEL_ENV,
            "GYMSTREAM_RETRY_ROLLOUT_DEADLINE_S": "600",
            "GYMSTREAM_RETRY_OUTAGE_BUDGET_S": "600",  # paused for the whole test
        },
    )
    publish_run(env, single_tool_input(tmp_path / "in.jsonl", rows=2), "down", 1)
    before = agent_status(env, "down")
    assert before["model_outage"] is None
    assert before["model_down_since_ms"] is None
    log = tmp_path / "worker.log"
    worker = start_worker(AGENT_ONE, env, log)
    model = None
    try:
        wait_until(
            lambda: "pausing intake" in log.read_text(), 60, "the pause", watch=[worker, log]
        )
        wait_until(
            lambda: agent_status(env, "down")["model_outage"] is not None,
            60,
            "status to show the outage",
            watch=[worker, log],
        )
        down = agent_status(env, "down")
        assert down["model_outage"].startswith("model down for "), down
        assert down["model_outage"].endswith(" s, intake paused"), down
        assert down["model_down_since_ms"] > 0
        model = start_scripted_in_thread(port=port, latency_ms=5)  # the model comes back
        wait_until(
            lambda: "answers again" in log.read_text(), 60, "the model back", watch=[worker, log]
        )
        wait_until(
            lambda: agent_status(env, "down")["model_outage"] is None,
            60,
            "status to drop the outage",
            watch=[worker, log],
        )
        assert agent_status(env, "down")["model_down_since_ms"] is None
    finally:
        code = stop_gracefully(worker, stall_s=20)
        if model is not None:
            model.stop()
    assert code == 0, log.read_text()
