"""The agent protocol: the plan picks the implementation (in-process loop over a native
environment or a resources server, or a remote /run agent); the worker calls ``run`` alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from fixtures.nemo_gym_fakes import Behaviour, recorded_app, recording
from test_loop import FakeModel, call, message, response

from gymstream.errors import ConfigError, ServerResponseError, VerifierError
from gymstream.nemo_gym.config.agents import AgentConfig, GymConfig, ServerRef
from gymstream.nemo_gym.outputs.result import RolloutResult, numeric_reward
from gymstream.nemo_gym.servers.agent import RemoteAgent
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.rollout.agent import Agent, LoopAgent
from gymstream.rollout.connect import open_agent
from gymstream.rollout.environment import SimpleEnvironment
from gymstream.rollout.plan import AgentPlan, ModelOptions, plan_agent
from gymstream.rollout.sessions import InProcess, Served
from gymstream.settings import ModelSettings, RetrySettings, ServerSettings

QUICK = RetrySettings(max_attempts=2, backoff_initial_s=0.001, backoff_max_s=0.002)
AGENT = "example_single_tool_call_simple_agent"
Serve = Callable[..., Awaitable[str]]
STC_ROW: dict[str, Any] = recording("stc_01_seed_session_legacy_row.json")["request"]["body"]


def plan(**config: Any) -> AgentPlan:
    agents = {AGENT: AgentConfig(environment="example_single_tool_call", **config)}
    return plan_agent(GymConfig(agents=agents), AGENT, ModelOptions(), ModelSettings())


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start a server answering as NeMo Gym 0.7.0's did (recordings ``prefix``_*); its URL."""
    servers: list[TestServer] = []

    async def start(prefix: str, behaviour: Behaviour | None = None) -> str:
        server = TestServer(recorded_app(prefix, behaviour or Behaviour()), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url(""))

    yield start
    for server in servers:
        await server.close()


@pytest.mark.parametrize(
    ("numbers", "reward"),
    [({"reward": 1}, 1.0), ({"reward": 0.5}, 0.5), ({"reward": True}, None), ({}, None)],
)
def test_numeric_reward_is_the_one_check(numbers: dict[str, Any], reward: float | None) -> None:
    assert numeric_reward(numbers) == reward
    assert numeric_reward([numbers]) is None  # not an object: no reward


def test_the_plan_names_its_environment_kind() -> None:
    ref = ServerRef(instance="x", server_type="t", url="http://127.0.0.1:1")
    assert plan().environment_kind == "in_process"
    assert plan(resources_server=ref).environment_kind == "resources_server"
    assert plan(remote_agent=ref).environment_kind == "remote_agent"


async def test_an_in_process_plan_opens_the_loop_over_the_native_environment() -> None:
    model = FakeModel([response(message("hi"))])
    async with open_agent(plan(max_steps=3), model, ServerSettings(), QUICK) as agent:
        assert isinstance(agent, LoopAgent)
        assert isinstance(agent.env, InProcess)
        assert (agent.max_steps, agent.model_name) == (3, "policy")


async def test_a_resources_server_plan_opens_the_loop_over_http(serve: Serve) -> None:
    url = await serve("stc")
    ref = ServerRef(instance="stc", server_type="resources_servers", url=url)
    model = FakeModel(
        [response(call("get_weather", '{"city": "sf"}', "c1")), response(message("cold"))]
    )
    async with open_agent(plan(resources_server=ref), model, ServerSettings(), QUICK) as agent:
        assert isinstance(agent, LoopAgent)
        assert isinstance(agent.env, Served)
        result = await agent.run(STC_ROW)
    assert isinstance(result, RolloutResult)
    assert result.tool_calls == 1


async def test_a_remote_agent_plan_opens_the_run_endpoint(serve: Serve) -> None:
    url = await serve("agent")
    ref = ServerRef(instance="stc_agent", server_type="responses_api_agents", url=url)
    async with open_agent(plan(remote_agent=ref), FakeModel([]), ServerSettings(), QUICK) as agent:
        assert isinstance(agent, RemoteAgent)


async def test_a_server_without_an_address_is_a_named_config_error() -> None:
    ref = ServerRef(instance="stc", server_type="resources_servers")
    with pytest.raises(ConfigError, match=f"agent '{AGENT}': NeMo Gym server 'stc'"):
        async with open_agent(plan(resources_server=ref), FakeModel([]), ServerSettings(), QUICK):
            pass


async def test_both_implementations_reject_a_reward_that_is_not_a_number(serve: Serve) -> None:
    async def boolean(row: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        return {"reward": True}

    env = InProcess(SimpleEnvironment(name="fake", tools={}, verify_fn=boolean))
    loop: Agent = LoopAgent(env, FakeModel([response(message("hi"))]), "m")
    with pytest.raises(VerifierError, match="no numeric 'reward'"):
        await loop.run({"responses_create_params": {"input": "hi"}})
    behaviour = Behaviour(fail_first={"/run": [200]})  # an empty 200: no verify result
    client = ServerClient(
        "a", await serve("agent", behaviour), settings=ServerSettings(), retry=QUICK
    )
    remote: Agent = RemoteAgent("a", client)
    try:
        with pytest.raises(ServerResponseError, match="numeric 'reward'"):
            await remote.run(recording("agent_01_stc_run.json")["request"]["body"])
    finally:
        await client.aclose()
