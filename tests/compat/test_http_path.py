"""gymstream's HTTP path against NeMo Gym 0.7.0's real servers: the same rows, the same answers.

- resources servers: gymstream's agent loop over ``ResourcesServerEnvironment`` (cookies, POST
  per tool, ``/verify``) pointed at NeMo Gym's example servers, vs NeMo Gym's ``simple_agent``
  ``/run`` over the same servers, same scripted model: reward, every verifier field, item types,
  tool names, arguments and output texts, row by row;
- the remote agent: ``RemoteAgent`` POSTing the row to NeMo Gym's ``simple_agent`` ``/run`` gives
  the row NeMo Gym gives.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from compat_rows import NOT_VERIFIER_FIELDS, example_rows, rows_of, trajectory
from nemo_gym_helpers import MS_AGENT, MS_RESOURCES, STC_AGENT, STC_RESOURCES, NemoGymServers

from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import build_model_client
from gymstream.rollout.remote_agent import RemoteAgent
from gymstream.rollout.resources_server import ResourcesServerEnvironment
from gymstream.rollout.server_client import ServerClient
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


@pytest.mark.parametrize("environment", sorted(SERVERS))
async def test_http_environment_rows_equal_nemo_gyms_simple_agent(
    environment: str, nemo_gym_examples: NemoGymServers, scripted_model: ScriptedThread
) -> None:
    resources, agent = SERVERS[environment]
    client = _client(resources, nemo_gym_examples.url(resources))
    env = ResourcesServerEnvironment(name=resources, client=client)
    model = build_model_client(
        ModelSettings(base_url=scripted_model.url, name="scripted"), RetrySettings()
    )
    try:
        for index, row in enumerate(rows_of(environment)):
            theirs = await _nemo_gym_run(nemo_gym_examples.url(agent), row)
            ours = (await run_rollout(row, env, model, model_name="scripted")).verify_result
            where = f"{environment} row {index}"
            fields = set(theirs) - NOT_VERIFIER_FIELDS
            assert {k: ours.get(k) for k in fields} == {k: theirs[k] for k in fields}, where
            assert trajectory(ours["response"]) == trajectory(theirs["response"]), where
    finally:
        await model.aclose()
        await client.aclose()


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
