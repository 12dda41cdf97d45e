"""NeMo Gym's own YAML files (copied from the 0.7.0 wheel into tests/data/nemo_gym_configs/)
translated into gymstream's agents and model endpoints, with NeMo Gym's merge semantics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gymstream.errors import ConfigError
from gymstream.nemo_gym.config.agents import DEFAULT_MAX_STEPS, resolve_model
from gymstream.nemo_gym.config.translate import load_any_config
from gymstream.nemo_gym.servers import head
from gymstream.settings import ModelSettings, VllmOptions

CONFIGS = Path(__file__).resolve().parents[2] / "data" / "nemo_gym_configs"
SEED = [CONFIGS / n for n in ("openai_model.yaml", "example_single_tool_call.yaml")]
SEED_MS = [*SEED, CONFIGS / "example_multi_step.yaml"]
ENV = {"unused": "x"}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_seed_yamls_give_simple_agents_over_http_and_remote_environment_servers(
    tmp_path: Path,
) -> None:
    config = load_any_config(SEED_MS, environ=ENV, cwd=tmp_path)
    agent = config.agent("example_multi_step_simple_agent")
    assert agent.environment == "example_multi_step_resources_server"
    assert agent.resources_server is not None
    assert agent.resources_server.instance == "example_multi_step_resources_server"
    assert agent.resources_server.url is None  # ng_run picks ports: from the head server
    assert agent.model == "policy_model"
    assert agent.max_steps == DEFAULT_MAX_STEPS  # NeMo Gym's unset max_steps
    remote = config.agent("example_single_tool_call_environment_server").remote_agent
    assert remote is not None
    assert remote.server_type == "environment_servers"
    assert set(config.agents) == {
        "example_single_tool_call_simple_agent",
        "example_single_tool_call_environment_server",
        "example_multi_step_simple_agent",
        "example_multi_step_environment_server",
    }
    assert config.models["policy_model"].api == "responses"
    # the environment server that fronts each agent (legacy_agent's agent_server) stamps its rows
    for env in ("example_multi_step", "example_single_tool_call"):
        for name in (f"{env}_simple_agent", f"{env}_environment_server"):
            stamp = config.agent(name).environment_stamp()
            assert stamp == (f"{env}_environment_server", "legacy_agent"), name


def test_an_agent_fronted_by_two_environment_servers_gets_no_stamp(tmp_path: Path) -> None:
    """NeMo Gym cannot route such an agent's rows by agent either; gymstream stamps nothing."""
    twin = write(
        tmp_path,
        "twin.yaml",
        "twin_environment_server:\n  environment_servers:\n    single_agent_turn:\n"
        "      agent_server: {name: example_multi_step_simple_agent}\n",
    )
    config = load_any_config([*SEED_MS, twin], environ=ENV, cwd=tmp_path)
    assert config.agent("example_multi_step_simple_agent").environment_stamp() is None
    twin_stamp = config.agent("twin_environment_server").environment_stamp()
    assert twin_stamp == ("twin_environment_server", "single_agent_turn")


def test_interpolations_resolve_from_other_files_and_oc_env(tmp_path: Path) -> None:
    pins = write(
        tmp_path,
        "pins.yaml",
        "policy_base_url: http://model:8000/v1\n"
        "policy_api_key: ${oc.env:MY_KEY,none-set}\n"
        "policy_model_name: ${oc.env:MY_MODEL,fallback}\n"
        "example_single_tool_call:\n  resources_servers:\n    example_single_tool_call:\n"
        "      host: 127.0.0.1\n      port: 19510\n"
        "example_single_tool_call_simple_agent:\n  responses_api_agents:\n    simple_agent:\n"
        "      max_steps: 3\n",
    )
    config = load_any_config([*SEED, pins], environ={"MY_MODEL": "qwen"}, cwd=tmp_path)
    model = config.models["policy_model"]
    assert (model.base_url, model.name, model.api_key) == (
        "http://model:8000/v1",
        "qwen",
        "none-set",
    )
    agent = config.agent("example_single_tool_call_simple_agent")
    assert agent.max_steps == 3
    assert agent.resources_server is not None
    assert agent.resources_server.url == "http://127.0.0.1:19510"


def test_env_yaml_in_the_working_directory_is_merged_over_the_files(tmp_path: Path) -> None:
    write(tmp_path, "env.yaml", "policy_base_url: http://from-env-yaml/v1\npolicy_model_name: m\n")
    pins = write(tmp_path, "pins.yaml", "policy_base_url: http://from-file/v1\n")
    config = load_any_config([*SEED, pins], environ=ENV, cwd=tmp_path)
    assert config.models["policy_model"].base_url == "http://from-env-yaml/v1"
    assert config.models["policy_model"].name == "m"


def test_a_vllm_model_is_chat_completions_at_all_its_base_urls(tmp_path: Path) -> None:
    pins = write(
        tmp_path,
        "pins.yaml",
        "policy_base_url: [http://a:8000/v1, http://b:8000/v1]\npolicy_api_key: k\n"
        "policy_model_name: served\n",
    )
    vllm = CONFIGS / "vllm_model.yaml"
    config = load_any_config(
        [vllm, CONFIGS / "example_single_tool_call.yaml", pins], environ=ENV, cwd=tmp_path
    )
    model = config.models["policy_model"]
    assert (model.base_url, model.name, model.api, model.api_key) == (
        "http://a:8000/v1",
        "served",
        "chat_completions",
        "k",
    )
    assert model.base_urls == ("http://a:8000/v1", "http://b:8000/v1")
    assert model.vllm is not None
    assert model.vllm.uses_reasoning_parser is True  # vllm_model.yaml's
    assert model.vllm.extra_body is None


def test_a_vllm_models_request_options_reach_the_endpoint_and_yield_to_the_cli(
    tmp_path: Path,
) -> None:
    options = write(
        tmp_path,
        "options.yaml",
        "policy_base_url: http://a:8000/v1\npolicy_api_key: k\npolicy_model_name: served\n"
        "policy_model:\n  responses_api_models:\n    vllm_model:\n"
        "      extra_body: {top_k: 5}\n      chat_template_kwargs: {enable_thinking: false}\n"
        "      sampling_overrides: {temperature: 0.5}\n      uses_reasoning_parser: false\n"
        "      base_url: [http://a:8000/v1, http://b:8000/v1]\n",
    )
    files = [CONFIGS / "vllm_model.yaml", CONFIGS / "example_single_tool_call.yaml", options]
    config = load_any_config(files, environ=ENV, cwd=tmp_path)
    agent = "example_single_tool_call_simple_agent"
    settings = resolve_model(config, agent, {}, ModelSettings.model_construct())
    assert settings.vllm == VllmOptions(
        extra_body={"top_k": 5},
        chat_template_kwargs={"enable_thinking": False},
        sampling_overrides={"temperature": 0.5},
        uses_reasoning_parser=False,
    )
    assert settings.base_urls == ("http://a:8000/v1", "http://b:8000/v1")
    # another endpoint on the command line: the YAML's server list is not its
    moved = resolve_model(
        config, agent, {"base_url": "http://c/v1"}, ModelSettings.model_construct()
    )
    assert (moved.base_url, moved.base_urls) == ("http://c/v1", ())


def test_an_unsupported_server_type_is_named(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "my_thing:\n  judge_servers:\n    judge:\n      port: 1\n")
    with pytest.raises(
        ConfigError, match="instance 'my_thing': unsupported server type 'judge_servers'"
    ) as caught:
        load_any_config([*SEED, bad], environ=ENV, cwd=tmp_path)
    assert "Extra inputs" not in str(caught.value)
    assert "bad.yaml" in str(caught.value)


def test_another_agent_type_is_a_remote_agent(tmp_path: Path) -> None:
    other = write(
        tmp_path,
        "swe.yaml",
        "swe_agent:\n  responses_api_agents:\n    mini_swe_agent:\n"
        "      host: 10.0.0.5\n      port: 9000\n",
    )
    config = load_any_config([other], environ=ENV, cwd=tmp_path)
    remote = config.agent("swe_agent").remote_agent
    assert remote is not None
    assert remote.url == "http://10.0.0.5:9000"


def test_gymstreams_own_format_keeps_working_beside_nemo_gyms(tmp_path: Path) -> None:
    own = write(
        tmp_path,
        "own.yaml",
        "agents:\n  example_single_tool_call_simple_agent:\n"
        "    environment: example_single_tool_call\n",
    )
    alone = load_any_config([own], environ=ENV, cwd=tmp_path)
    assert alone.agent("example_single_tool_call_simple_agent").resources_server is None
    mixed = load_any_config([*SEED, own], environ=ENV, cwd=tmp_path)
    assert mixed.agent("example_single_tool_call_simple_agent").resources_server is None
    assert "example_single_tool_call_environment_server" in mixed.agents


def test_the_head_servers_addresses_fill_what_the_files_lack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    recorded = json.loads(
        (CONFIGS.parent / "nemo_gym_protocol" / "head_ngrun_01_server_instances.json").read_text()
    )

    def fake_get(url: str, timeout: float) -> httpx.Response:
        assert url == "http://head:11000/server_instances"
        return httpx.Response(
            200, json=recorded["response"]["body"], request=httpx.Request("GET", url)
        )

    monkeypatch.setattr(head.httpx, "get", fake_get)
    urls = head.server_urls("http://head:11000/")
    config = load_any_config(SEED_MS, environ=ENV, cwd=tmp_path, head_urls=urls)
    server = config.agent("example_multi_step_simple_agent").resources_server
    assert server is not None
    assert server.url == "http://127.0.0.1:19511"
    remote = config.agent("example_single_tool_call_environment_server").remote_agent
    assert remote is not None
    assert remote.url == "http://127.0.0.1:19530"


def test_an_unreachable_head_server_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="is `ng_run` running there"):
        head.server_urls("http://127.0.0.1:9", timeout_s=0.5)


def test_a_vllm_models_return_token_id_information_reaches_the_endpoint(tmp_path: Path) -> None:
    """NeMo Gym's vllm_model switch for token ids is gymstream's model option of the same name."""
    pins = write(
        tmp_path,
        "pins.yaml",
        "policy_base_url: http://a:8000/v1\npolicy_api_key: k\npolicy_model_name: served\n"
        "policy_model:\n  responses_api_models:\n    vllm_model:\n"
        "      return_token_id_information: true\n",
    )
    files = [CONFIGS / "vllm_model.yaml", CONFIGS / "example_single_tool_call.yaml"]
    config = load_any_config([*files, pins], environ=ENV, cwd=tmp_path)
    assert config.models["policy_model"].return_token_id_information is True
    plain = write(
        tmp_path,
        "off.yaml",
        "policy_base_url: http://a/v1\npolicy_api_key: k\npolicy_model_name: s\n",
    )
    off = load_any_config([*files, plain], environ=ENV, cwd=tmp_path)
    assert off.models["policy_model"].return_token_id_information is False
