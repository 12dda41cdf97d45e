"""Open the agent a plan names: the in-process loop over a native environment or a NeMo Gym
resources server over HTTP, or a remote agent; check that its server answers before any work
is taken.

Only the servers the served agent uses are contacted: a config that also declares environment
servers, other agents or a head server nobody started is normal NeMo Gym usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gymstream.errors import ConfigError
from gymstream.nemo_gym.config.agents import ServerRef
from gymstream.nemo_gym.servers.agent import RemoteAgent
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.nemo_gym.servers.resources import ResourcesServerEnvironment
from gymstream.rollout.agent import Agent, LoopAgent
from gymstream.rollout.environment import load_environment
from gymstream.rollout.model.client import ModelClient
from gymstream.rollout.plan import AgentPlan
from gymstream.rollout.sessions import InProcess, Served, Sessions
from gymstream.settings import RetrySettings, ServerSettings
from gymstream.wire.messages import FailureClass

__all__ = ["check_agent", "open_agent"]

_HOW_TO_START = (
    'start NeMo Gym\'s servers first (`ng_run "+config_paths=[...]"` with the same config '
    "files, then pass --nemo-gym-head http://HOST:PORT; or run the server standalone with a "
    "host and port in the config)"
)


async def _client(
    agent: str, ref: ServerRef, settings: ServerSettings, retry: RetrySettings, remote: bool
) -> ServerClient:
    if ref.url is None:
        raise ConfigError(
            f"agent '{agent}': NeMo Gym server '{ref.instance}' ({ref.server_type}) has no "
            f"address: give it host and port in the config, or {_HOW_TO_START}"
        )
    client = ServerClient(
        ref.instance,
        ref.url,
        settings=settings,
        retry=retry,
        unavailable=(
            FailureClass.REMOTE_AGENT_UNAVAILABLE
            if remote
            else FailureClass.RESOURCES_SERVER_UNAVAILABLE
        ),
        error=(FailureClass.REMOTE_AGENT_ERROR if remote else FailureClass.RESOURCES_SERVER_ERROR),
    )
    problem = await client.healthy()
    if problem is not None:
        await client.aclose()
        raise ConfigError(
            f"agent '{agent}': NeMo Gym server '{ref.instance}' ({ref.server_type}) at {ref.url} "
            f"does not answer /health ({problem}); {_HOW_TO_START}"
        )
    return client


@asynccontextmanager
async def open_agent(
    plan: AgentPlan, model: ModelClient, settings: ServerSettings, retry: RetrySettings
) -> AsyncIterator[Agent]:
    """The plan's agent, its HTTP pool closed on exit. Raises ConfigError (named).

    ``model`` is what the in-process loop calls (a remote agent calls its own).
    """
    config = plan.config
    ref = config.remote_agent or config.resources_server
    if ref is None:  # plan.environment_kind == "in_process"
        yield _loop_agent(plan, InProcess(load_environment(config.environment)), model)
        return
    remote = plan.environment_kind == "remote_agent"
    client = await _client(plan.name, ref, settings, retry, remote=remote)
    try:
        if remote:
            yield RemoteAgent(name=ref.instance, client=client)
        else:
            env = ResourcesServerEnvironment(name=ref.instance, client=client)
            yield _loop_agent(plan, Served(env), model)
    finally:
        await client.aclose()


async def check_agent(plan: AgentPlan, settings: ServerSettings, retry: RetrySettings) -> None:
    """What opening the plan's agent checks, without a model: its native environment loads, or
    its NeMo Gym server has an address and answers /health. Raises ConfigError (named)."""
    config = plan.config
    ref = config.remote_agent or config.resources_server
    if ref is None:
        load_environment(config.environment)
        return
    remote = plan.environment_kind == "remote_agent"
    client = await _client(plan.name, ref, settings, retry, remote=remote)
    await client.aclose()


def _loop_agent(plan: AgentPlan, env: Sessions, model: ModelClient) -> LoopAgent:
    return LoopAgent(
        env,
        model,
        plan.model.name,
        max_steps=plan.config.max_steps,
        skip_verification_reward=plan.skip_verification_reward,
    )
