"""A NeMo Gym server that answers a consistent HTTP 500 is the environment's error, on a real Kafka.

Issue 19 item 6: a remote agent whose ``/run`` answers 500 every time (NeMo Gym's wordle without
its data file) was ``remote_agent_unavailable``, retried on every call and again per rollout.
Now one retry confirms it: the failure is ``remote_agent_error``, terminal, after exactly two
``/run`` calls. A 503 (an overloaded server) stays ``remote_agent_unavailable`` and is retried.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from nemo_fakes import Behaviour, ServerThread, recorded_app, recording
from pipeline_helpers import cli_env, gymstream, read_jsonl

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "nemo_gym_configs"
SEED = ",".join(
    str(CONFIGS / n)
    for n in ("openai_model.yaml", "example_single_tool_call.yaml", "example_multi_step.yaml")
)
REMOTE = "example_single_tool_call_environment_server"


class RemoteAgent:
    """A recorded NeMo Gym agent behind a head server that names it."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.agent = ServerThread(recorded_app("agent", self.behaviour))
        url = self.agent.url

        async def instances(request: web.Request) -> web.Response:
            return web.json_response(
                [{"process_name": REMOTE, "url": url, "server_type": "x", "name": REMOTE}]
            )

        head = web.Application()
        head.router.add_get("/server_instances", instances)
        self.head = ServerThread(head)

    def runs(self) -> int:
        return len([s for s in self.behaviour.seen if s.path == "/run"])

    def stop(self) -> None:
        self.agent.stop()
        self.head.stop()


@pytest.fixture
def remote() -> Iterator[RemoteAgent]:
    running = RemoteAgent()
    try:
        yield running
    finally:
        running.stop()


def collect_one(
    tmp_path: Path, bootstrap: str, remote: RemoteAgent
) -> tuple[list[dict[str, object]], str]:
    """The failures of one collect of one row through the remote agent, and its output."""
    row = {**recording("agent_01_stc_run.json")["request"]["body"], "agent_ref": {"name": REMOTE}}
    data = tmp_path / "input.jsonl"
    data.write_text(json.dumps(row) + "\n")
    out = tmp_path / "out.jsonl"
    env = cli_env(
        bootstrap,
        "http://127.0.0.1:9/v1",  # never called: the remote agent runs the rollout itself
        GYMSTREAM_RETRY_MAX_ATTEMPTS="4",
        GYMSTREAM_RETRY_BACKOFF_INITIAL_S="0.01",
        GYMSTREAM_RETRY_BACKOFF_MAX_S="0.02",
    )
    result = gymstream(
        "collect", "-i", str(data), "-o", str(out), "--config", SEED,
        "--nemo-gym-head", remote.head.url, "--no-progress", "--run-id", "r500",
        env=env,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 0, result.stdout  # nothing succeeded
    return read_jsonl(tmp_path / "out_failures.jsonl"), result.stdout + result.stderr


def test_a_consistent_500_from_a_remote_agent_is_its_error_after_one_confirmation(
    kafka_bootstrap: str, remote: RemoteAgent, tmp_path: Path
) -> None:
    remote.behaviour.fail_first["/run"] = [500] * 20
    failures, text = collect_one(tmp_path, kafka_bootstrap, remote)
    assert len(failures) == 1, text
    [failure] = failures
    assert failure["_ng_failure_class"] == "remote_agent_error", failure
    assert failure["_ng_failure_terminal"] is True, failure
    assert remote.runs() == 2  # the first answer and its one confirmation, no more


def test_a_503_from_a_remote_agent_stays_unavailable_and_is_retried(
    kafka_bootstrap: str, remote: RemoteAgent, tmp_path: Path
) -> None:
    remote.behaviour.fail_first["/run"] = [503] * 200
    failures, text = collect_one(tmp_path, kafka_bootstrap, remote)
    assert failures, text
    assert failures[-1]["_ng_failure_class"] == "remote_agent_unavailable", failures[-1]
    assert remote.runs() >= 4
