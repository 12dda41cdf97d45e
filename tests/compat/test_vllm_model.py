"""NeMo Gym 0.7.0's ``vllm_model`` vs gymstream's Chat Completions client, over two fake vLLMs.

NeMo Gym's real ``vllm_model`` server runs from its own ``vllm_model.yaml`` plus a YAML that
gives it two ``base_url``s and request options (``extra_body``, ``chat_template_kwargs``,
``sampling_overrides``); gymstream reads the same files (``--config``). The same Responses
request through each must reach vLLM as the same Chat Completions body, the answer must come
back as the same Response object, key by key (``uses_reasoning_parser``: vLLM's reasoning
becomes summary text), a session/rollout sticks to one server, and gymstream's rollouts use
both servers. The rows: string content, content parts (with instructions), tools, earlier tool
calls (a tool output of parts) and earlier reasoning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from nemo_gym_helpers import _START_TIMEOUT_S, Instance, NemoGymServers, run_nemo_gym_servers
from vllm_fake import VllmFake

from gymstream.nemo_gym.config.agents import resolve_model
from gymstream.nemo_gym.config.translate import load_any_config
from gymstream.rollout.environment import load_environment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.spread import SpreadModelClient, model_session, open_model_client
from gymstream.settings import ModelSettings, RetrySettings

# the module's server set starts inside the first test: its start deadline on top of the timeout
pytestmark = pytest.mark.timeout(_START_TIMEOUT_S + 180)

MODEL = "policy_model"
AGENT = "weather_simple_agent"
VLLM_YAML = "responses_api_models/vllm_model/configs/vllm_model.yaml"
REASONING = "The user wants Tokyo's weather."
OPTIONS = {
    "extra_body": {"top_k": 5, "repetition_penalty": 1.05, "temperature": 0.1},
    "chat_template_kwargs": {"enable_thinking": True, "style": "short"},
    "sampling_overrides": {"temperature": 0.6, "top_p": 0.95},
}
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
METADATA = {"extra_body": '{"seed": 7, "top_k": 9}', "chat_template_kwargs": '{"style": "long"}'}


def _reasoning(text: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": text}]}


def _said(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {
        "type": "message",
        "role": "assistant",
        "content": [part],
        "id": "m",
        "status": "completed",
    }


HISTORY = [  # an earlier turn with reasoning, text and a tool call, then its output
    _reasoning("Which city? Tokyo."),
    _said("Let me look."),
    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"T"}'},
    {"type": "function_call_output", "call_id": "c1", "output": '{"sky":"clear"}'},
    _reasoning("Now I know."),  # a turn of reasoning and a tool call only
    {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"K"}'},
    {"type": "function_call_output", "call_id": "c2", "output": '{"sky":"rain"}'},
]


def _parts(*texts: str) -> list[dict[str, Any]]:
    return [{"type": "input_text", "text": t} for t in texts]


PLAIN_HISTORY = [  # an earlier turn of text and a tool call whose output is content parts
    _said("Let me look."),
    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"T"}'},
    {"type": "function_call_output", "call_id": "c1", "output": _parts("sky: ", "clear")},
]


def request(
    text: str,
    *,
    tools: bool = True,
    history: bool = False,
    parts: bool = False,
    calls: bool = False,
    plain: bool = False,
    metadata: bool = True,
) -> dict[str, Any]:
    """A Responses request; ``parts``: content as lists of text parts, with ``instructions``
    (NeMo Gym folds them and the developer message into one system message); ``calls``: an
    earlier tool call (its output as parts); ``history``: earlier turns with reasoning;
    ``plain``: ``input`` is just the text (NeMo Gym sends it as one text part)."""
    if parts:
        opening = [
            {"role": "developer", "content": _parts("Be brief.", " Be kind.")},
            {"role": "user", "content": _parts("Weather ", text)},
        ]
    else:
        opening = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": text}]
    items = [*opening, *(PLAIN_HISTORY if calls else []), *(HISTORY if history else [])]
    params: dict[str, Any] = {
        "input": text if plain else items,
        "temperature": 1.0,
        "max_output_tokens": 64,
    }
    if parts:
        params["instructions"] = "You answer weather questions."
    if metadata:
        params["metadata"] = METADATA
    if tools:
        params["tools"] = [TOOL]
    return params


CASES = {  # the rows vllm_model must send exactly as NeMo Gym does
    "string_content": {"tools": False, "metadata": False},
    "string_input": {"tools": True, "plain": True},
    "content_parts": {"tools": True, "parts": True},
    "tools": {"tools": True},
    "earlier_tool_calls": {"tools": True, "calls": True},
    "reasoning": {"tools": True, "history": True},
}


class Setup:
    def __init__(self, fakes: list[VllmFake], servers: NemoGymServers, files: list[Path]):
        self.fakes = fakes
        self.servers = servers
        self.files = files

    def bodies(self) -> list[tuple[int, dict[str, Any]]]:
        """(fake index, chat body) of every chat request so far, then forget them."""
        out = [
            (i, body)
            for i, fake in enumerate(self.fakes)
            for path, body in fake.requests
            if path == "/v1/chat/completions"
        ]
        for fake in self.fakes:
            fake.requests.clear()
            fake.answers.clear()
        return out

    def settings(self) -> ModelSettings:
        config = load_any_config(self.files, environ={}, cwd=self.files[0].parent)
        return resolve_model(config, AGENT, {}, ModelSettings.model_construct())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    fakes = [VllmFake(reasoning=REASONING), VllmFake(reasoning=REASONING)]
    folder = tmp_path_factory.mktemp("vllm_model")
    options = folder / "options.yaml"
    model = {"base_url": [f.url for f in fakes], **OPTIONS}
    options.write_text(yaml.safe_dump({MODEL: {"responses_api_models": {"vllm_model": model}}}))
    agent = folder / "agent.yaml"  # gymstream serves an agent: one that uses the model
    refs = {
        "resources_server": {"type": "resources_servers", "name": "weather"},
        "model_server": {"type": "responses_api_models", "name": MODEL},
    }
    agent.write_text(
        yaml.safe_dump(
            {
                "policy_api_key": "dummy-key",
                "policy_model_name": "scripted",
                "weather": {"resources_servers": {"example_single_tool_call": {}}},
                AGENT: {"responses_api_agents": {"simple_agent": refs}},
            }
        )
    )
    try:
        with run_nemo_gym_servers(
            [Instance(MODEL, "responses_api_models", "vllm_model")],
            [VLLM_YAML, str(options)],
            policy_base_url=fakes[0].url,
            log_dir=folder / "logs",
        ) as servers:
            files = [servers.site_packages / VLLM_YAML, options, agent]
            yield Setup(fakes, servers, files)
    finally:
        for fake in fakes:
            fake.stop()


def test_the_yaml_gives_both_servers_and_the_options(setup: Setup) -> None:
    settings = setup.settings()
    assert settings.base_urls == tuple(f.url for f in setup.fakes)
    assert settings.api == "chat_completions"
    assert settings.vllm is not None
    assert settings.vllm.extra_body == OPTIONS["extra_body"]
    assert settings.vllm.sampling_overrides == OPTIONS["sampling_overrides"]
    assert settings.vllm.uses_reasoning_parser is True  # vllm_model.yaml's own value


async def _ours(setup: Setup, params: dict[str, Any]) -> dict[str, Any]:
    settings = setup.settings()
    client = open_model_client(settings, RetrySettings(max_attempts=1))
    try:
        with model_session():  # the agent loop sets the model name, as here
            return await client.create({**params, "model": settings.name})
    finally:
        await client.aclose()


def _theirs(setup: Setup, params: dict[str, Any], client: httpx.Client) -> dict[str, Any]:
    answer = client.post(f"{setup.servers.url(MODEL)}/v1/responses", json=params)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


_HEX_ID = re.compile(r"^(resp|rs|msg)_[0-9a-f]{32}$")


def _same_ids(value: Any) -> Any:
    """NeMo Gym's fresh ``uuid4().hex`` ids, as ``<prefix>_<hex>``: both sides mint their own."""
    if isinstance(value, dict):
        return {k: _same_ids(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_ids(v) for v in value]
    if isinstance(value, str) and _HEX_ID.match(value):
        return value.split("_")[0] + "_<hex>"
    return value


def _differ(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    keys = sorted(set(theirs) | set(ours))
    return {k: (theirs.get(k, "<absent>"), ours.get(k, "<absent>")) for k in keys
            if theirs.get(k, "<absent>") != ours.get(k, "<absent>")}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
async def test_the_body_and_the_answer_are_nemo_gyms(setup: Setup, case: str) -> None:
    """The Chat Completions body vLLM gets is identical, and the Response object that comes
    back equal key by key (ids aside: each side mints fresh ones of the same form)."""
    params = request("Weather in Tokyo?", **CASES[case])
    setup.bodies()
    with httpx.Client(timeout=60) as client:
        theirs = _theirs(setup, params, client)
    ((_, their_body),) = setup.bodies()
    ours = await _ours(setup, request("Weather in Tokyo?", **CASES[case]))
    ((_, our_body),) = setup.bodies()
    assert _differ(their_body, our_body) == {}
    assert _differ(_same_ids(theirs), _same_ids(ours)) == {}
    for item in ours["output"]:
        if item["type"] == "function_call":
            assert item["id"] == item["call_id"] == "chatcmpl-tool-0"  # the server's id
    if case == "reasoning":  # sent back beside the text, as vllm_model's parser mode does
        assistant = [m for m in our_body["messages"] if m["role"] == "assistant"]
        assert [m.get("reasoning_content") for m in assistant] == [
            "Which city? Tokyo.",
            "Now I know.",
        ]
        assert assistant[0]["content"] == "Let me look."
        assert ours["output"][0]["summary"] == [{"type": "summary_text", "text": REASONING}]
    if case == "content_parts":  # parts stay parts; instructions fold into one system message
        assert our_body["messages"][0] == {
            "role": "system",
            "content": "You answer weather questions.\n\nBe brief. Be kind.",
        }
        assert our_body["messages"][1]["content"] == [
            {"type": "text", "text": "Weather "},
            {"type": "text", "text": "Weather in Tokyo?"},
        ]
    if case == "string_input":  # a plain string input goes as one text part, as NeMo Gym's
        assert our_body["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Tokyo?"}]}
        ]
    if case == "string_content":
        assert ours["metadata"] is None
        assert ours["usage"]["input_tokens_details"] == {"cached_tokens": None}
        assert ours["output"][-1]["content"][0]["logprobs"] is None
    else:  # the options, as vllm_model merges them: metadata over the config, the body over
        # extra_body, sampling_overrides over everything
        assert their_body["chat_template_kwargs"] == {"enable_thinking": True, "style": "long"}
        assert (their_body["seed"], their_body["top_k"]) == (7, 9)
        assert their_body["repetition_penalty"] == 1.05
        assert (their_body["temperature"], their_body["top_p"]) == (0.6, 0.95)
    if CASES[case]["tools"]:
        assert "strict" not in our_body["tools"][0]["function"]


def test_nemo_gym_keeps_a_session_on_one_server(setup: Setup) -> None:
    setup.bodies()
    with httpx.Client(timeout=60) as client:  # one cookie jar: one NeMo Gym session
        for _ in range(4):
            _theirs(setup, request("Weather in Tokyo?"), client)
    servers = {index for index, _ in setup.bodies()}
    assert len(servers) == 1


async def test_each_rollout_sticks_to_one_server_and_both_are_used(setup: Setup) -> None:
    setup.bodies()
    client = open_model_client(setup.settings(), RetrySettings(max_attempts=1))
    assert isinstance(client, SpreadModelClient)
    env = load_environment("example_single_tool_call")
    cities = ["Tokyo", "Paris", "Lima", "Oslo", "Rome", "Kyiv"]
    try:
        for city in cities:
            row = {"responses_create_params": request(f"Weather in {city}?")}
            result = await run_rollout(row, env, client, model_name="scripted")
            assert result.turns == 2
    finally:
        await client.aclose()
    by_rollout: dict[str, set[int]] = {}
    for index, body in setup.bodies():
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        assert body["messages"][0] == {"role": "developer", "content": "Be brief."}  # NeMo Gym's
        by_rollout.setdefault(question, set()).add(index)
        assert body["seed"] == 7  # every turn carries the options
        assert body["chat_template_kwargs"]["style"] == "long"
    assert len(by_rollout) == len(cities)
    assert all(len(servers) == 1 for servers in by_rollout.values()), by_rollout
    used = [sum(servers == {i} for servers in by_rollout.values()) for i in range(2)]
    assert used == [3, 3]  # round robin per rollout: exactly even
