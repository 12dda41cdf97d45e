"""Open the environment an agent's config names: native (in-process), a NeMo Gym resources
server over HTTP, or a remote agent; check that its server answers before any work is taken.

Only the servers the served agent uses are contacted: a config that also declares environment
servers, other agents or a head server nobody started is normal NeMo Gym usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gymstream.errors import ConfigError
from gymstream.nemo_gym.config.agents import AgentConfig, ServerRef
from gymstream.nemo_gym.servers.agent import RemoteAgent
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.nemo_gym.servers.resources import ResourcesServerEnvironment
from gymstream.rollout.environment import AnyEnvironment, load_environment
from gymstream.settings import RetrySettings, ServerSettings
from gymstream.wire.messages import FailureClass

__all__ = ["open_environment"]

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
async def open_environment(
    agent: str, config: AgentConfig, settings: ServerSettings, retry: RetrySettings
) -> AsyncIterator[AnyEnvironment | RemoteAgent]:
    """The agent's environment, its HTTP pool closed on exit. Raises ConfigError (named)."""
    ref = config.remote_agent or config.resources_server
    if ref is None:
        yield load_environment(config.environment)
        return
    client = await _client(agent, ref, settings, retry, remote=config.remote_agent is not None)
    try:
        if config.remote_agent is not None:
            yield RemoteAgent(name=ref.instance, client=client)
        else:
            yield ResourcesServerEnvironment(name=ref.instance, client=client)
    finally:
        await client.aclose()
