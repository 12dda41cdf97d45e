"""NeMo Gym's own YAML files drive `collect` and `worker` through resources servers over HTTP and
a remote agent, on a real Kafka.

The servers are in-test stand-ins that speak NeMo Gym 0.7.0's protocol (``tests/nemo_fakes.py``:
cookies as the session, FastAPI's compact JSON, a head server's ``/server_instances``); the
comparison against NeMo Gym's real servers belongs to the real-NeMo-Gym harness.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_pipeline
from aiohttp import web
from nemo_fakes import Behaviour, ServerThread, native_app, recorded_app, recording
from pipeline_helpers import (
    AGENT_MULTI,
    AGENT_ONE,
    assert_exactly_once,
    cli_env,
    gymstream,
    multiverifier_input,
    read_jsonl,
    single_tool_input,
    spawn,
    stop_gracefully,
)

from gymstream.rollout.environment import load_environment

pytestmark = pytest.mark.kafka

scripted_url = test_pipeline.scripted_url  # the scripted model, one per test

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "nemo_gym_configs"
SEED = ",".join(
    str(CONFIGS / n)
    for n in ("openai_model.yaml", "example_single_tool_call.yaml", "example_multi_step.yaml")
)
REMOTE = "example_single_tool_call_environment_server"
NG_KEYS = [
    "responses_create_params",
    "response",
    "reward",
    "mask_sample",
    "failure_kind",
    "failure_reason",
]


def head_app(urls: dict[str, str]) -> web.Application:
    async def instances(request: web.Request) -> web.Response:
        body = [
            {"process_name": name, "url": url, "server_type": "x", "name": name}
            for name, url in urls.items()
        ]
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/server_instances", instances)
    return app


class Servers:
    def __init__(self) -> None:
        self.stc = Behaviour()
        self.ms = Behaviour()
        self.agent = Behaviour()
        self._threads = [
            ServerThread(native_app(load_environment("example_single_tool_call"), self.stc)),
            ServerThread(native_app(load_environment("example_multi_step"), self.ms)),
            ServerThread(recorded_app("agent", self.agent)),
        ]
        stc, ms, agent = (t.url for t in self._threads)
        self.head = ServerThread(
            head_app(
                {
                    "example_single_tool_call": stc,
                    "example_multi_step_resources_server": ms,
                    REMOTE: agent,
                }
            )
        )
        self._threads.append(self.head)

    def stop(self) -> None:
        for thread in self._threads:
            thread.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    running = Servers()
    try:
        yield running
    finally:
        running.stop()


def tool_outputs(row: dict[str, Any]) -> list[str]:
    items = row["response"]["output"]
    return [i["output"] for i in items if i.get("type") == "function_call_output"]


def test_collect_with_nemo_gyms_yamls_runs_the_seed_through_resources_servers(
    kafka_bootstrap: str, scripted_url: str, servers: Servers, tmp_path: Path
) -> None:
    data = multiverifier_input(tmp_path / "input.jsonl")
    out = tmp_path / "out.jsonl"
    seeded = len([s for s in servers.stc.seen + servers.ms.seen if s.path == "/seed_session"])
    result = gymstream(
        "collect",
        "-i",
        str(data),
        "-o",
        str(out),
        "--config",
        SEED,
        "--nemo-gym-head",
        servers.head.url,
        "--no-progress",
        env=cli_env(kafka_bootstrap, scripted_url),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    rows = read_jsonl(out)
    assert_exactly_once(
        rows, {(AGENT_ONE, t, 0) for t in range(5)} | {(AGENT_MULTI, t, 0) for t in range(5, 10)}
    )
    for row in rows:
        assert list(row)[: len(NG_KEYS)] == NG_KEYS
        assert isinstance(row["reward"], float)
        outputs = tool_outputs(row)
        assert outputs, "every scripted rollout calls a tool"
        assert all(", " not in text and ": " not in text for text in outputs)  # the server's text
    multi = [r for r in rows if r["agent_ref"]["name"] == AGENT_MULTI]
    assert all("set_overlap" in r and "parsed_synonym_values" in r for r in multi)
    seen = servers.stc.seen + servers.ms.seen
    assert len([s for s in seen if s.path == "/seed_session"]) - seeded == 10
    assert all(s.cookie for s in seen if s.path not in ("/seed_session", "/aggregate_metrics"))
    metrics = json.loads((tmp_path / "out_aggregate_metrics.json").read_text())
    assert sorted(m["agent_ref"]["name"] for m in metrics) == sorted([AGENT_ONE, AGENT_MULTI])
    for entry in metrics:
        agent = entry["agent_ref"]["name"]
        rewards = [r["reward"] for r in rows if r["agent_ref"]["name"] == agent]
        assert entry["key_metrics"] == {"mean/reward": sum(rewards) / len(rewards)}
        assert entry["agent_metrics"]["rollouts"] == 5
    sent = [s.body for s in seen if s.path == "/aggregate_metrics"][-1]["verify_responses"]
    assert all("responses_create_params" not in r and "_ng_task_index" in r for r in sent)


def test_a_worker_serves_a_remote_agent_from_the_same_yamls(
    kafka_bootstrap: str, scripted_url: str, servers: Servers, tmp_path: Path
) -> None:
    env = cli_env(kafka_bootstrap, scripted_url)
    run = recording("agent_01_stc_run.json")
    row = {**run["request"]["body"], "agent_ref": {"name": REMOTE}}
    data = tmp_path / "input.jsonl"
    data.write_text(json.dumps(row) + "\n")
    out = tmp_path / "out.jsonl"
    assert gymstream("topics", "apply", "--config", SEED, env=env).returncode == 0
    config = ["--config", SEED, "--nemo-gym-head", servers.head.url]
    worker = spawn(["worker", "--agent", REMOTE, *config], env, tmp_path / "worker.log")
    try:
        produced = gymstream(
            "produce", str(data), "--num-repeats", "2", "--run-id", "r1", "--config", SEED, env=env
        )
        assert produced.returncode == 0, produced.stderr
        sunk = gymstream("sink", "--output", str(out), "--run-id", "r1", env=env)
        assert sunk.returncode == 0, sunk.stderr
    finally:
        assert stop_gracefully(worker) == 0, (tmp_path / "worker.log").read_text()
    rows = read_jsonl(out)
    assert_exactly_once(rows, {(REMOTE, 0, 0), (REMOTE, 0, 1)})
    answer = run["response"]["body"]
    for written in rows:
        for key in NG_KEYS:
            assert written[key] == answer[key], key
    assert len([s for s in servers.agent.seen if s.path == "/run"]) >= 2


def test_a_server_nobody_started_is_a_clear_error_naming_it(
    kafka_bootstrap: str, scripted_url: str, tmp_path: Path
) -> None:
    pins = tmp_path / "pins.yaml"
    pins.write_text(
        "example_single_tool_call:\n  resources_servers:\n    example_single_tool_call:\n"
        "      host: 127.0.0.1\n      port: 9\n"
    )
    result = gymstream(
        "worker",
        "--agent",
        AGENT_ONE,
        "--config",
        f"{SEED},{pins}",
        env=cli_env(kafka_bootstrap, scripted_url),
        timeout=60,
    )
    assert result.returncode == 2
    message = result.stderr + result.stdout
    assert "'example_single_tool_call'" in message
    assert "/health" in message
    assert "ng_run" in message
    assert "Traceback" not in message


def test_sink_with_the_yamls_writes_the_servers_aggregate_metrics(
    kafka_bootstrap: str, scripted_url: str, servers: Servers, tmp_path: Path
) -> None:
    """Separate worker, produce and sink: the sink asks each agent's server at the end, as
    collect does (the same function), for a file of NeMo Gym's shape."""
    env = cli_env(kafka_bootstrap, scripted_url)
    data = single_tool_input(tmp_path / "input.jsonl", 3)
    out = tmp_path / "out.jsonl"
    config = ["--config", SEED, "--nemo-gym-head", servers.head.url]
    assert gymstream("topics", "apply", "--config", SEED, env=env).returncode == 0
    asked = len([s for s in servers.stc.seen if s.path == "/aggregate_metrics"])
    worker = spawn(["worker", "--agent", AGENT_ONE, *config], env, tmp_path / "worker.log")
    try:
        produced = gymstream("produce", str(data), "--run-id", "r1", "--config", SEED, env=env)
        assert produced.returncode == 0, produced.stderr
        sunk = gymstream("sink", "--output", str(out), "--run-id", "r1", *config, env=env)
        assert sunk.returncode == 0, sunk.stderr + sunk.stdout
    finally:
        assert stop_gracefully(worker) == 0, (tmp_path / "worker.log").read_text()
    rows = read_jsonl(out)
    assert_exactly_once(rows, {(AGENT_ONE, t, 0) for t in range(3)})
    (entry,) = json.loads((tmp_path / "out_aggregate_metrics.json").read_text())
    assert entry["agent_ref"] == {"name": AGENT_ONE}
    # NeMo Gym's meaning: the environment server that fronts the agent (its legacy_agent)
    assert entry["_ng_environment_server"] == "example_single_tool_call_environment_server"
    for row in rows:  # stamped as NeMo Gym's collector stamps them
        assert row["_ng_environment_server"] == "example_single_tool_call_environment_server"
        assert row["_ng_result_type"] == "legacy_agent"
    assert entry["agent_metrics"]["rollouts"] == 3  # the fake server's own count
    mean = sum(r["reward"] for r in rows) / 3
    assert entry["key_metrics"] == {"mean/reward": mean}
    calls = [s for s in servers.stc.seen if s.path == "/aggregate_metrics"]
    assert len(calls) == asked + 1
    assert len(calls[-1].body["verify_responses"]) == 3
