"""gymstream's HTTP path against NeMo Gym 0.7.0's real servers: the same rows, the same answers.

- resources servers: gymstream's agent loop over ``ResourcesServerEnvironment`` (cookies, POST
  per tool, ``/verify``) pointed at NeMo Gym's example servers, vs NeMo Gym's ``simple_agent``
  ``/run`` over the same servers, same scripted model: reward, every verifier field, item types,
  tool names, arguments and output texts, row by row;
- the remote agent: ``RemoteAgent`` POSTing the row to NeMo Gym's ``simple_agent`` ``/run`` gives
  the row NeMo Gym gives.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fixtures.nemo_gym_rows import NOT_VERIFIER_FIELDS, example_rows, rows_of, trajectory
from fixtures.nemo_gym_servers import (
    MORE_SERVERS,
    MS_AGENT,
    MS_RESOURCES,
    STC_AGENT,
    STC_RESOURCES,
    NemoGymServers,
)

from gymstream.nemo_gym.servers.agent import RemoteAgent
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.nemo_gym.servers.resources import ResourcesServerEnvironment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import build_model_client
from gymstream.settings import ModelSettings, RetrySettings, ServerSettings
from gymstream.testing.thread import ScriptedThread
from gymstream.wire.messages import FailureClass

SERVERS = {
    "example_single_tool_call": (STC_RESOURCES, STC_AGENT),
    "example_multi_step": (MS_RESOURCES, MS_AGENT),
}


def _client(instance: str, url: str) -> ServerClient:
    return ServerClient(
        instance,
        url,
        settings=ServerSettings(),
        retry=RetrySettings(),
        unavailable=FailureClass.RESOURCES_SERVER_UNAVAILABLE,
    )


async def _nemo_gym_run(url: str, row: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        answer = await client.post(f"{url}/run", json=row)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def _compare_rows(
    servers: NemoGymServers,
    scripted_model: ScriptedThread,
    environment: str,
    resources: str,
    agent: str,
    rows: list[dict[str, Any]],
) -> set[float]:
    """Each row through simple_agent /run and through our loop over the same resources server;
    returns NeMo Gym's rewards."""
    client = _client(resources, servers.url(resources))
    env = ResourcesServerEnvironment(name=resources, client=client)
    model = build_model_client(
        ModelSettings(base_url=scripted_model.url, name="scripted"), RetrySettings()
    )
    try:
        rewards = set()
        for index, row in enumerate(rows):
            theirs = await _nemo_gym_run(servers.url(agent), row)
            ours = (await run_rollout(row, env, model, model_name="scripted")).verify_result
            where = f"{environment} row {index}"
            fields = set(theirs) - NOT_VERIFIER_FIELDS
            assert {k: ours.get(k) for k in fields} == {k: theirs[k] for k in fields}, where
            assert trajectory(ours["response"]) == trajectory(theirs["response"]), where
            rewards.add(theirs["reward"])
    finally:
        await model.aclose()
        await client.aclose()
    return rewards


@pytest.mark.parametrize("environment", sorted(SERVERS))
async def test_http_environment_rows_equal_nemo_gyms_simple_agent(
    environment: str, nemo_gym_examples: NemoGymServers, scripted_model: ScriptedThread
) -> None:
    resources, agent = SERVERS[environment]
    rows = rows_of(environment)
    rewards = await _compare_rows(
        nemo_gym_examples, scripted_model, environment, resources, agent, rows
    )
    assert rewards  # every row compared


@pytest.mark.parametrize("folder", sorted(MORE_SERVERS))
async def test_servers_without_a_port_give_nemo_gyms_rows(
    folder: str, nemo_gym_more: NemoGymServers, scripted_model: ScriptedThread
) -> None:
    """mcqa (a verifier only) and example_session_state_mgmt (the cookie is the session)."""
    resources, agent = MORE_SERVERS[folder]
    data = nemo_gym_more.site_packages / "resources_servers" / folder / "data" / "example.jsonl"
    rows = [json.loads(line) for line in data.read_text("utf-8").splitlines()[:3]]
    rewards = await _compare_rows(nemo_gym_more, scripted_model, folder, resources, agent, rows)
    assert rewards


async def test_remote_agent_rows_equal_nemo_gyms_run(nemo_gym_examples: NemoGymServers) -> None:
    client = _client(STC_AGENT, nemo_gym_examples.url(STC_AGENT))
    agent = RemoteAgent(name=STC_AGENT, client=client)
    try:
        for row in example_rows("example_single_tool_call")[:2]:
            theirs = await _nemo_gym_run(nemo_gym_examples.url(STC_AGENT), row)
            ours = (await agent.run(row)).verify_result
            fields = set(theirs) - NOT_VERIFIER_FIELDS
            assert {k: ours.get(k) for k in fields} == {k: theirs[k] for k in fields}
            assert trajectory(ours["response"]) == trajectory(theirs["response"])
    finally:
        await client.aclose()
