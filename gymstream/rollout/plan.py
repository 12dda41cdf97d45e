"""An agent's plan: everything a worker needs to serve one agent, resolved once, typed.

Built at the boundary (``plan_agent``: the CLI, the tests), passed down as it is, and sent to
spawned worker processes serialized (``to_json``/``from_json``) rather than as command-line
flags, so a new model option is one field of ``ModelSettings`` plus its CLI flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gymstream.errors import ConfigError
from gymstream.nemo_gym.config.agents import AgentConfig, GymConfig, resolve_model
from gymstream.settings import ModelSettings

__all__ = [
    "AgentPlan",
    "AgentPlans",
    "EnvironmentKind",
    "ModelOptions",
    "plan_agent",
    "read_plan",
]

EnvironmentKind = Literal["in_process", "resources_server", "remote_agent"]


class ModelOptions(BaseModel):
    """The ``--model-*`` options a user gave (None: not given): they win over the YAML and the
    environment (``resolve_model``); values are checked there, with the agent named."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = None
    name: str | None = None
    api: str | None = None
    return_token_id_information: bool | None = None


class AgentPlan(BaseModel):
    """One agent, ready to serve: its configuration, its resolved model endpoint (defaults <
    YAML < environment < CLI) and its concurrency (the CLI's, else the agent's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    config: AgentConfig
    model: ModelSettings
    concurrency: int = Field(ge=1)

    @property
    def environment_kind(self) -> EnvironmentKind:
        """Where the rollout runs: this process's agent loop over a native environment or a
        resources server, or a remote agent's ``/run``."""
        if self.config.remote_agent is not None:
            return "remote_agent"
        if self.config.resources_server is not None:
            return "resources_server"
        return "in_process"

    @property
    def skip_verification_reward(self) -> float | None:
        """The reward without verifying (NeMo Gym's ``skip_verification``), None: verify."""
        config = self.config
        return config.skip_verification_reward if config.skip_verification else None

    def to_json(self) -> bytes:
        """The plan for a child process, the API key included (it travels over a pipe the
        child inherits, never through argv or a file)."""
        data = self.model_dump(mode="json")
        key = self.model.api_key
        data["model"]["api_key"] = None if key is None else key.get_secret_value()
        return pydantic_core.to_json(data)

    @classmethod
    def from_json(cls, data: bytes | str) -> AgentPlan:
        """The plan ``to_json`` wrote; ConfigError (one line) when it is not one."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            field = f"{where}: " if where else ""
            raise ConfigError(f"agent plan: {field}{first['msg']}") from exc


def plan_agent(
    config: GymConfig,
    agent: str,
    options: ModelOptions,
    from_env: ModelSettings,
    concurrency: int | None = None,
) -> AgentPlan:
    """The plan of ``agent``: ConfigError for an unknown agent or a model that does not
    validate. ``from_env`` is ``ModelSettings()`` as the boundary built it."""
    agent_config = config.agent(agent)
    model = resolve_model(config, agent, options.model_dump(exclude_none=True), from_env)
    return AgentPlan(
        name=agent,
        config=agent_config,
        model=model,
        concurrency=concurrency or agent_config.concurrency,
    )


@dataclass(frozen=True)
class AgentPlans:
    """How to plan any agent of a configuration, for a command that learns which agents it
    serves as rows arrive (``collect``): built once at the CLI; ``plan(agent)`` when needed."""

    config: GymConfig
    options: ModelOptions
    from_env: ModelSettings
    concurrency: int | None = None

    def plan(self, agent: str) -> AgentPlan:
        """``plan_agent`` for ``agent``; ConfigError for an unknown one or a bad model."""
        return plan_agent(self.config, agent, self.options, self.from_env, self.concurrency)


def read_plan(fd: int) -> AgentPlan:
    """The plan a parent wrote as the first line of the pipe ``fd`` (standard input of a
    spawned worker); read byte by byte up to the newline, so nothing after it is consumed.
    ConfigError when the pipe ends first or the line is not a plan."""
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise ConfigError("standard input ended before a whole agent plan was read")
        line += chunk
    return AgentPlan.from_json(bytes(line))
