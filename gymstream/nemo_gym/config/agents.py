"""Agent and model configuration files: load several YAMLs and merge them, like NeMo Gym.

Each environment ships a ``config.yaml`` declaring its agent(s); a model YAML declares model
endpoints. Combining environments is listing their files (``--config A.yaml,B.yaml``): later
files override earlier ones key by key. Without ``--config``, every ``environments/*/config.yaml``
is loaded, so agents are found by name.

Format::

    agents:
      example_single_tool_call_simple_agent:
        environment: example_single_tool_call
        model: policy_model        # a key of `models`, or the default endpoint from settings
        max_steps: 16
        concurrency: 256
    models:
      policy_model:
        base_url: http://127.0.0.1:8000/v1
        name: my-model
        api: chat_completions
        return_token_id_information: true   # token ids + log-probs per turn (NeMo Gym's name)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gymstream.errors import ConfigError, EnvironmentNotFoundError
from gymstream.nemo_gym.outputs.output_row import EnvironmentServer
from gymstream.settings import ModelSettings, VllmOptions

__all__ = [
    "DEFAULT_MAX_STEPS",
    "AgentConfig",
    "GymConfig",
    "ModelEndpoint",
    "ServerRef",
    "config_from_mapping",
    "environments_root",
    "load_config",
    "read_yaml",
    "resolve_model",
]

DEFAULT_MAX_STEPS = 16


class ServerRef(BaseModel):
    """A NeMo Gym server an agent talks to over HTTP: its instance name and base URL.

    ``url`` is None when the config gave no address (``ng_run`` picks ports): then it comes from
    a NeMo Gym head server (``--nemo-gym-head``) before a worker starts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: str
    server_type: str
    url: str | None = None
    implementation: str | None = None  # its type under server_type (e.g. ``legacy_agent``)


class AgentConfig(BaseModel):
    """One agent: which environment it serves, which model it calls, how it runs.

    ``environment`` names a native environment (in-process, the fast path); with
    ``resources_server`` set the agent loop calls that NeMo Gym resources server over HTTP
    instead, and with ``remote_agent`` set the whole rollout is that server's ``POST /run``.
    ``skip_verification`` (NeMo Gym's agent option): no verify call, the reward is
    ``skip_verification_reward`` and the row says ``verification_skipped: true``.
    ``environment_server``: the NeMo Gym ``environment_servers`` instance that fronts the agent
    (the one whose config references it), when exactly one does; its name and implementation
    are stamped on every output row, as NeMo Gym's collector stamps them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: str
    model: str = "policy_model"
    max_steps: int = Field(DEFAULT_MAX_STEPS, ge=1)
    concurrency: int = Field(256, ge=1)
    resources_server: ServerRef | None = None
    remote_agent: ServerRef | None = None
    skip_verification: bool = False
    skip_verification_reward: float = 0.0
    environment_server: ServerRef | None = None

    def environment_stamp(self) -> EnvironmentServer | None:
        """The ``_ng_environment_server`` / ``_ng_result_type`` stamps of this agent's rows."""
        ref = self.environment_server
        if ref is None or ref.implementation is None:
            return None
        return EnvironmentServer(ref.instance, ref.implementation)


class ModelEndpoint(BaseModel):
    """A model endpoint declared in YAML; unset fields come from settings (env or CLI)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = None
    name: str | None = None
    api: str | None = None
    api_key: str | None = None
    timeout_s: float | None = None
    return_token_id_information: bool | None = None
    base_urls: tuple[str, ...] | None = None
    vllm: VllmOptions | None = None


class GymConfig(BaseModel):
    """The merged configuration of every file given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    models: dict[str, ModelEndpoint] = Field(default_factory=dict)

    def agent(self, name: str) -> AgentConfig:
        """The agent of that name, or a ConfigError listing the known ones."""
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents)) or "none"
            raise EnvironmentNotFoundError(
                f"unknown agent '{name}' (known agents: {known}); "
                "pass --config with the environment's config.yaml"
            ) from None


def environments_root() -> Path:
    """The folder that holds one sub-folder per environment."""
    import environments

    return Path(environments.__file__).parent


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top ('agents'/'models', or NeMo Gym's instances)"
        )
    return data


def load_config(paths: Sequence[Path] | None = None) -> GymConfig:
    """Merge the given YAML files (or every environment's config.yaml) into one GymConfig."""
    if not paths:
        paths = sorted(environments_root().glob("*/config.yaml"))
    merged: dict[str, Any] = {}
    for path in paths:
        merged = _merge(merged, read_yaml(Path(path)))
    return config_from_mapping(merged, ",".join(str(p) for p in paths))


def config_from_mapping(merged: Mapping[str, Any], where: str) -> GymConfig:
    """Validate an already merged ``{agents, models}`` mapping; ``where`` names its files."""
    try:
        return GymConfig.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {loc}: {first['msg']}") from exc


def resolve_model(
    config: GymConfig, agent: str, overrides: Mapping[str, Any], from_env: ModelSettings
) -> ModelSettings:
    """The endpoint an agent calls: defaults < YAML < environment variables < CLI options.

    ``from_env`` is ``ModelSettings()`` as the boundary built it (only the fields the environment
    set count); ``overrides`` are the CLI options the user actually gave (None values ignored).
    """
    fields: dict[str, Any] = {}
    declared = config.models.get(config.agent(agent).model)
    if declared is not None:
        fields.update({k: v for k, v in declared.model_dump().items() if v is not None})
    fields.update({k: getattr(from_env, k) for k in from_env.model_fields_set})
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if "base_urls" in fields and fields.get("base_url") not in fields["base_urls"]:
        del fields["base_urls"]  # another endpoint was given: the YAML's server list is not its
    try:
        return ModelSettings.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"model for agent '{agent}': {where}: {first['msg']}") from exc
