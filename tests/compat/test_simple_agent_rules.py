"""simple_agent 0.7.0's rules that gymstream's agent loop mirrors, against NeMo Gym's real /run.

- ``skip_verification`` (an agent option): no ``/verify``; the reward is
  ``skip_verification_reward`` and the row says ``verification_skipped: true``; its
  ``/aggregate_metrics`` is NeMo Gym's empty one. The agent comes from a NeMo Gym YAML
  (tests/data/nemo_gym_skip_verification.yaml), read by NeMo Gym and by gymstream alike; it runs
  alone (``skip_agent``), beside ``nemo_gym_examples``' resources server and policy model.
- a turn with neither a tool call nor an assistant message (the scripted model's ``ENDINGS``:
  an empty turn, a reasoning-only turn) ends the rollout ``incomplete`` with
  ``ng_termination_reason`` / ``ng_termination_message`` in the response's metadata.
Rows through gymstream's loop over NeMo Gym's resources server equal simple_agent's /run rows
over the same server and the same scripted model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fixtures.nemo_gym_rows import NOT_VERIFIER_FIELDS, example_rows, trajectory
from fixtures.nemo_gym_servers import (
    SKIP_AGENT,
    SKIP_VERIFICATION_YAML,
    STC_AGENT,
    STC_RESOURCES,
    Instance,
    NemoGymServers,
    run_nemo_gym_servers,
)

from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.config.translate import load_any_config
from gymstream.nemo_gym.outputs.result import RolloutResult
from gymstream.nemo_gym.servers.aggregate_metrics import server_metrics, stripped
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.nemo_gym.servers.resources import ResourcesServerEnvironment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import build_model_client
from gymstream.settings import ModelSettings, RetrySettings, ServerSettings
from gymstream.testing.policy import ENDINGS
from gymstream.testing.thread import ScriptedThread
from gymstream.wire.messages import FailureClass

MODEL_YAML = "responses_api_models/openai_model/configs/openai_model.yaml"
STC_YAML = "resources_servers/example_single_tool_call/configs/example_single_tool_call.yaml"


@pytest.fixture(scope="module")
def skip_agent(
    nemo_gym_examples: NemoGymServers,
    scripted_model: ScriptedThread,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NemoGymServers]:
    """The skip_verification simple_agent, calling nemo_gym_examples' running servers."""
    folder = tmp_path_factory.mktemp("skip_agent")
    running = folder / "running.yaml"
    ports = nemo_gym_examples.ports

    def at(server_type: str, implementation: str, name: str) -> dict[str, Any]:
        return {server_type: {implementation: {"host": "127.0.0.1", "port": ports[name]}}}

    stc = at("resources_servers", "example_single_tool_call", STC_RESOURCES)
    model = at("responses_api_models", "openai_model", "policy_model")
    running.write_text(yaml.safe_dump({STC_RESOURCES: stc, "policy_model": model}))
    with run_nemo_gym_servers(
        [Instance(SKIP_AGENT, "responses_api_agents", "simple_agent")],
        [MODEL_YAML, STC_YAML, str(SKIP_VERIFICATION_YAML), str(running)],
        policy_base_url=scripted_model.url,
        log_dir=folder,
    ) as servers:
        servers.ports = {**ports, **servers.ports}  # one view of both sets
        yield servers


def _config(servers: NemoGymServers) -> GymConfig:
    """gymstream's reading of the YAML files NeMo Gym's servers run from (plus their ports)."""
    site = servers.site_packages
    files = [site / MODEL_YAML, site / STC_YAML, SKIP_VERIFICATION_YAML]
    urls = {name: servers.url(name) for name in servers.ports}
    environ = {"unused": "x"}
    return load_any_config(files, environ=environ, cwd=servers.log_dir, head_urls=urls)


async def _both(
    servers: NemoGymServers,
    scripted: ScriptedThread,
    agent: str,
    row: dict[str, Any],
    skip_reward: float | None = None,
) -> tuple[dict[str, Any], RolloutResult]:
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(f"{servers.url(agent)}/run", json=row)
    assert answer.status_code == 200, answer.text
    client = ServerClient(
        STC_RESOURCES,
        servers.url(STC_RESOURCES),
        settings=ServerSettings(),
        retry=RetrySettings(),
        unavailable=FailureClass.RESOURCES_SERVER_UNAVAILABLE,
    )
    env = ResourcesServerEnvironment(name=STC_RESOURCES, client=client)
    model = build_model_client(
        ModelSettings(base_url=scripted.url, name="scripted"), RetrySettings()
    )
    try:
        ours = await run_rollout(
            row, env, model, model_name="scripted", skip_verification_reward=skip_reward
        )
    finally:
        await model.aclose()
        await client.aclose()
    theirs: dict[str, Any] = answer.json()
    return theirs, ours


def _assert_same_row(theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    fields = set(theirs) - NOT_VERIFIER_FIELDS
    assert {k: ours.get(k) for k in fields} == {k: theirs[k] for k in fields}
    assert trajectory(ours["response"]) == trajectory(theirs["response"])


async def test_skip_verification_gives_nemo_gyms_row(
    skip_agent: NemoGymServers, scripted_model: ScriptedThread
) -> None:
    agent = _config(skip_agent).agent(SKIP_AGENT)
    assert (agent.skip_verification, agent.skip_verification_reward) == (True, 0.25)
    for row in example_rows("example_single_tool_call")[:2]:
        theirs, ours = await _both(
            skip_agent, scripted_model, SKIP_AGENT, row, agent.skip_verification_reward
        )
        assert theirs["reward"] == 0.25
        assert theirs["verification_skipped"] is True
        _assert_same_row(theirs, ours.verify_result)


async def test_a_skip_verification_agents_metrics_are_nemo_gyms_empty_ones(
    skip_agent: NemoGymServers, scripted_model: ScriptedThread, tmp_path: Path
) -> None:
    row = example_rows("example_single_tool_call")[0]
    _, ours = await _both(skip_agent, scripted_model, SKIP_AGENT, row, 0.25)
    written = {**ours.verify_result, "agent_ref": {"name": SKIP_AGENT}, "_ng_task_index": 0}
    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps(written) + "\n")
    settings, retry = ServerSettings(), RetrySettings()
    config = _config(skip_agent)
    entries = await server_metrics(config, output, settings=settings, retry=retry)
    assert entries is not None
    (entry,) = entries
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(
            f"{skip_agent.url(SKIP_AGENT)}/aggregate_metrics",
            json={"verify_responses": [stripped(written)]},
        )
    theirs = answer.json()
    for key in ("agent_metrics", "key_metrics", "group_level_metrics", "repeat_level_metrics"):
        assert entry[key] == theirs[key], key
    assert entry["agent_metrics"] == {}


@pytest.mark.parametrize("marker", sorted(ENDINGS))
async def test_a_turn_without_message_or_tool_call_ends_as_nemo_gyms(
    marker: str, nemo_gym_examples: NemoGymServers, scripted_model: ScriptedThread
) -> None:
    row = example_rows("example_single_tool_call")[0]
    params = row["responses_create_params"]
    *before, ask = params["input"]
    assert ask["role"] == "user"
    ask = {**ask, "content": f"{ask['content']} {marker}"}
    row = {**row, "responses_create_params": {**params, "input": [*before, ask]}}
    theirs, ours = await _both(nemo_gym_examples, scripted_model, STC_AGENT, row)
    mine = ours.verify_result
    _assert_same_row(theirs, mine)
    assert theirs["response"]["status"] == mine["response"]["status"] == "incomplete"
    keys = ("ng_termination_reason", "ng_termination_message")
    expected = "empty_output" if marker == "[scripted:empty]" else "incomplete_reasoning"
    assert theirs["response"]["metadata"]["ng_termination_reason"] == expected
    assert {k: mine["response"]["metadata"][k] for k in keys} == {
        k: theirs["response"]["metadata"][k] for k in keys
    }
