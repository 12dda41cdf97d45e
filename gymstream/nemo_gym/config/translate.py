"""NeMo Gym's own YAML configs, read as NeMo Gym reads them, translated into a GymConfig.

``--config A.yaml,B.yaml`` may list NeMo Gym files (``<instance>: {<server type>:
{<implementation>: {...}}}``), gymstream's own (``agents:`` / ``models:`` only) or both; the shape
of each file tells them apart. A NeMo Gym file's ``config_paths`` are followed
(``gymstream.nemo_gym.config.paths``: NeMo Gym's lookup and merge order). NeMo Gym files are
merged in order with OmegaConf, then ``env.yaml`` from the working directory over them (NeMo
Gym's order), and ``${...}`` interpolations resolve with OmegaConf's semantics.
``${oc.env:NAME,default}`` reads the environment mapping the boundary passes in
(``gymstream.settings.process_environment``), never ``os.environ`` itself. Each instance becomes:

- ``responses_api_agents`` / ``simple_agent``: gymstream's own agent loop against the instance's
  ``resources_server`` (an HTTP environment) and ``model_server``, with its ``max_steps``
  (unset: NeMo Gym means unlimited, gymstream caps at ``DEFAULT_MAX_STEPS``) and its
  ``skip_verification`` / ``skip_verification_reward`` (or the config's top-level ones);
- any other agent type, and every ``environment_servers`` instance: a remote agent (``POST /run``);
- ``responses_api_models``: ``openai_model`` -> the Responses API at ``openai_base_url``;
  ``vllm_model`` -> Chat Completions at ``base_url`` (a list: each rollout sticks to one
  server, round robin) with its request options (``extra_body``, ``chat_template_kwargs``,
  ``sampling_overrides``, ``uses_reasoning_parser``; see ``gymstream.nemo_gym.servers.vllm_model``);
- ``resources_servers``: the address an agent's HTTP environment calls (``host`` + ``port``).

An agent an ``environment_servers`` instance fronts (references, by NeMo Gym 0.7.0's rule) gets
that server as its ``environment_server``: its rows are stamped ``_ng_environment_server`` and
``_ng_result_type`` as NeMo Gym's collector stamps them (the rollout itself still runs as above).

An instance of an unknown server type is a ``ConfigError`` that names it. Addresses missing from
the files come from a NeMo Gym head server (``head_urls``, see ``gymstream.nemo_gym.servers.head``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gymstream.errors import ConfigError
from gymstream.nemo_gym.config.agents import (
    DEFAULT_MAX_STEPS,
    GymConfig,
    ServerRef,
    config_from_mapping,
    load_config,
    read_yaml,
)
from gymstream.nemo_gym.config.paths import expand_config_paths

__all__ = [
    "ENV_YAML",
    "SERVER_TYPES",
    "is_nemo_gym_file",
    "load_any_config",
    "merge_files",
    "translate",
]

RESOURCES = "resources_servers"
AGENTS = "responses_api_agents"
MODELS = "responses_api_models"
ENVIRONMENTS = "environment_servers"
SERVER_TYPES = (RESOURCES, AGENTS, MODELS, ENVIRONMENTS)
ENV_YAML = "env.yaml"
_OWN_KEYS = frozenset({"agents", "models"})
_ENV_RESOLVER = "gymstream.env"


def is_nemo_gym_file(data: Mapping[str, Any]) -> bool:
    """True when a parsed YAML file is NeMo Gym's format (anything but ``agents``/``models``)."""
    return bool(data) and not set(data) <= _OWN_KEYS


def _own_env_text(text: str) -> str:
    # ${oc.env:...} reads the mapping we were given, not os.environ (settings at the boundary)
    return text.replace("${oc.env:", "${" + _ENV_RESOLVER + ":")


def _merged(paths: Sequence[Path], env_yaml: Path | None, environ: Mapping[str, str]) -> DictConfig:
    missing = object()

    def env(key: str, default: Any = missing) -> str | None:
        if key in environ:
            return environ[key]
        if default is missing:
            raise KeyError(f"environment variable '{key}' not found")
        return None if default is None else str(default)

    OmegaConf.register_resolver(_ENV_RESOLVER, env, replace=True, annotation_validation="off")
    configs = []
    for path in [*paths, *([env_yaml] if env_yaml is not None and env_yaml.exists() else [])]:
        try:
            configs.append(OmegaConf.create(_own_env_text(path.read_text(encoding="utf-8"))))
        except (OSError, OmegaConfBaseException, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: not a NeMo Gym config: {exc}") from exc
    merged = OmegaConf.merge(*configs) if configs else OmegaConf.create({})
    if not isinstance(merged, DictConfig):  # pragma: no cover - every file is a mapping
        raise ConfigError("the merged NeMo Gym config is not a mapping")
    return merged


def merge_files(paths: Sequence[Path], *, cwd: Path, environ: Mapping[str, str]) -> DictConfig:
    """NeMo Gym files merged as NeMo Gym merges them: their ``config_paths`` followed, then
    ``cwd/env.yaml`` over all; interpolations are resolved when values are read."""
    files = expand_config_paths(paths, cwd=cwd, environ=environ)
    return _merged(files, cwd / ENV_YAML, environ)


def _value(node: DictConfig, key: str, where: str) -> Any:
    """``node[key]`` resolved; None when absent or when it interpolates a value nobody set
    (e.g. ``${policy_base_url}`` with the endpoint given by ``GYMSTREAM_MODEL_*`` instead)."""
    try:
        value = OmegaConf.select(node, key, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        if "not found" in str(exc) or "Missing" in type(exc).__name__:
            return None
        raise ConfigError(f"{where}.{key}: {exc}") from exc
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _instances(merged: DictConfig) -> dict[str, tuple[str, str, DictConfig]]:
    """``{instance: (server type, implementation, its options)}``; globals are skipped."""
    out: dict[str, tuple[str, str, DictConfig]] = {}
    for name, node in merged.items_ex(resolve=False):
        if not isinstance(node, DictConfig) or len(node) != 1:
            continue
        (key,) = node.keys()
        server_type = str(key)
        impls = node[key]
        if not isinstance(impls, DictConfig) or len(impls) != 1:
            continue
        (impl,) = impls.keys()
        options = impls[impl]
        if not isinstance(options, DictConfig):
            continue
        if server_type not in SERVER_TYPES:
            raise ConfigError(
                f"instance '{name!s}': unsupported server type '{server_type}' "
                f"(NeMo Gym's server types are {', '.join(SERVER_TYPES)})"
            )
        out[str(name)] = (server_type, str(impl), options)
    return out


def _address(options: DictConfig, where: str) -> str | None:
    host, port = _value(options, "host", where), _value(options, "port", where)
    if host is None or port is None:
        return None
    return f"http://{host}:{port}"


def _model(impl: str, options: DictConfig, where: str) -> dict[str, Any]:
    if impl == "openai_model":
        fields = {
            "base_url": _value(options, "openai_base_url", where),
            "api_key": _value(options, "openai_api_key", where),
            "name": _value(options, "openai_model", where),
            "api": "responses",
        }
    elif impl == "vllm_model":
        return _vllm_model(options, where)
    else:
        raise ConfigError(
            f"{where}: model server type '{impl}' is not supported "
            "(gymstream calls openai_model and vllm_model endpoints directly)"
        )
    return {k: str(v) for k, v in fields.items() if v is not None}


_VLLM_OPTIONS = (
    "extra_body",
    "chat_template_kwargs",
    "forward_request_chat_template_kwargs",
    "sampling_overrides",
    "uses_reasoning_parser",
    "replace_developer_role_with_system",
)


def _vllm_model(options: DictConfig, where: str) -> dict[str, Any]:
    """A ``vllm_model``: Chat Completions at its ``base_url`` (a list: every server, each rollout
    sticks to one), and the options of 0.7.0's that change the request body (``VllmOptions``)."""
    base_url = _value(options, "base_url", where)
    urls = [str(u) for u in base_url] if isinstance(base_url, list) else []
    fields: dict[str, Any] = {
        k: str(v)
        for k, v in {
            "base_url": urls[0] if urls else base_url,
            "api_key": _value(options, "api_key", where),
            "name": _value(options, "model", where),
        }.items()
        if v is not None
    }
    fields["api"] = "chat_completions"
    if len(urls) > 1:
        fields["base_urls"] = urls
    # NeMo Gym's own switch for the token ids and log-probs that trainers need
    token_ids = _value(options, "return_token_id_information", where)
    if token_ids is not None:
        fields["return_token_id_information"] = bool(token_ids)
    vllm = {key: _value(options, key, where) for key in _VLLM_OPTIONS}
    fields["vllm"] = {k: v for k, v in vllm.items() if v is not None}
    return fields


_SKIP_KEYS = ("skip_verification", "skip_verification_reward")


def _skip_verification(merged: DictConfig, options: DictConfig, where: str) -> dict[str, Any]:
    """An agent's ``skip_verification`` / ``skip_verification_reward``; the config's top-level
    keys of the same names fill an agent that sets none (NeMo Gym's ``ng_run`` does so)."""
    out: dict[str, Any] = {}
    for key in _SKIP_KEYS:
        value = _value(options, key, where)
        if value is None:
            value = _value(merged, key, key)
        if value is not None:
            out[key] = value
    return out


def _ref(node: Any, kind: str, where: str) -> str:
    if not isinstance(node, DictConfig) or not isinstance(node.get("name"), str):
        raise ConfigError(f"{where}: needs {kind}: {{type: ..., name: <instance>}}")
    return str(node["name"])


def _fronted_agents(options: DictConfig) -> list[str]:
    """The agents an environment server's config references, by NeMo Gym 0.7.0's rule: any
    field whose value has ``type: responses_api_agents``, and ``agent_server`` (type optional)."""
    names: list[str] = []
    for field, ref in options.items_ex(resolve=False):
        if not isinstance(ref, DictConfig) or not isinstance(ref.get("name"), str):
            continue
        if ref.get("type") == AGENTS or (field == "agent_server" and ref.get("type") is None):
            names.append(str(ref["name"]))
    return names


def _environment_servers(
    instances: Mapping[str, tuple[str, str, DictConfig]], url_of: Any
) -> dict[str, ServerRef]:
    """``{agent: the environment server that fronts it}``: each environment server fronts
    itself and the agents it references; an agent fronted by several gets none (NeMo Gym then
    needs each row to name its server, which gymstream's rows do not)."""
    fronts: dict[str, list[ServerRef]] = {}
    for name, (server_type, impl, options) in instances.items():
        if server_type != ENVIRONMENTS:
            continue
        ref = ServerRef(
            instance=name, server_type=server_type, url=url_of(name), implementation=str(impl)
        )
        fronts.setdefault(name, []).append(ref)
        for agent in dict.fromkeys(_fronted_agents(options)):
            fronts.setdefault(agent, []).append(ref)
    return {agent: refs[0] for agent, refs in fronts.items() if len(refs) == 1}


def translate(merged: DictConfig, head_urls: Mapping[str, str] | None = None) -> GymConfig:
    """A GymConfig from a merged NeMo Gym config; ``head_urls`` fills addresses it lacks."""
    instances = _instances(merged)
    head_urls = head_urls or {}

    def url_of(name: str) -> str | None:
        _, _, options = instances[name]
        return _address(options, name) or head_urls.get(name)

    agents: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for name, (server_type, impl, options) in instances.items():
        where = f"{name}.{server_type}.{impl}"
        if server_type == AGENTS and impl == "simple_agent":
            resources = _ref(options.get("resources_server"), "resources_server", where)
            model = _ref(options.get("model_server"), "model_server", where)
            if resources not in instances:
                raise ConfigError(f"{where}: resources_server '{resources}' is not in the config")
            if model in instances:
                _, model_impl, model_options = instances[model]
                models[model] = _model(model_impl, model_options, model)
            max_steps = _value(options, "max_steps", where)
            agents[name] = {
                "environment": resources,
                "model": model,
                "max_steps": int(max_steps) if max_steps else DEFAULT_MAX_STEPS,
                "resources_server": ServerRef(
                    instance=resources, server_type=RESOURCES, url=url_of(resources)
                ),
                **_skip_verification(merged, options, where),
            }
        elif server_type in (AGENTS, ENVIRONMENTS):
            agents[name] = {
                "environment": name,
                "remote_agent": ServerRef(instance=name, server_type=server_type, url=url_of(name)),
            }
    for agent, server in _environment_servers(instances, url_of).items():
        if agent in agents:
            agents[agent]["environment_server"] = server
    return config_from_mapping({"agents": agents, "models": models}, "NeMo Gym config")


def load_any_config(
    paths: Sequence[Path] | None,
    *,
    environ: Mapping[str, str],
    cwd: Path | None = None,
    head_urls: Mapping[str, str] | None = None,
) -> GymConfig:
    """Merge ``paths`` (NeMo Gym's and gymstream's files, told apart by shape) into one config.

    Without paths, every native environment's ``config.yaml`` (as before). ``env.yaml`` in
    ``cwd`` is merged over the NeMo Gym files. gymstream's own files win over NeMo Gym's for an
    agent or model declared in both.
    """
    if not paths:
        return load_config(None)
    nemo = [Path(p) for p in paths if is_nemo_gym_file(read_yaml(Path(p)))]
    own = [Path(p) for p in paths if Path(p) not in nemo]
    if not nemo:
        return load_config(own)
    files = ",".join(str(p) for p in nemo)
    merged = merge_files(nemo, cwd=cwd or Path.cwd(), environ=environ)  # its errors name a file
    try:
        translated = translate(merged, head_urls)
    except ConfigError as exc:
        raise ConfigError(f"{files}: {exc}") from exc
    if not own:
        return translated
    mine = load_config(own)
    return GymConfig(
        agents={**translated.agents, **mine.agents}, models={**translated.models, **mine.models}
    )
