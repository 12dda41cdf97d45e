"""The scripted model's token ids: deterministic, in both APIs, prompts that extend across turns."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from gymstream.errors import ModelResponseError
from gymstream.nemo_gym.outputs.token_ids import turn_tokens
from gymstream.rollout.environment import load_environment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import build_model_client
from gymstream.settings import ModelSettings, RetrySettings
from gymstream.testing.server import LogprobsMode, serve_scripted
from gymstream.testing.tokens import generation_token_ids, prompt_token_ids
from gymstream.wire.messages import FailureClass

ENVIRONMENTS = Path(__file__).resolve().parents[3] / "environments"


def multi_step_row() -> dict[str, Any]:
    path = ENVIRONMENTS / "example_multi_step" / "data" / "example.jsonl"
    return dict(json.loads(path.read_text().splitlines()[0]))


async def rollout(api: str, logprobs: LogprobsMode) -> dict[str, Any]:
    server = await serve_scripted(logprobs=logprobs)
    settings = ModelSettings(
        base_url=server.url, name="scripted", api=api, return_token_id_information=True
    )
    client = build_model_client(settings, RetrySettings(max_attempts=1))
    try:
        result = await run_rollout(
            multi_step_row(), load_environment("example_multi_step"), client, model_name="s"
        )
        return result.verify_result
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


def assistant_message(item: Mapping[str, Any]) -> dict[str, Any]:
    """The chat message a turn's last item stands for (the scripted turns are one call each)."""
    if item["type"] == "function_call":
        function = {"name": item["name"], "arguments": item["arguments"]}
        return {"role": "assistant", "content": None, "tool_calls": [{"function": function}]}
    return {"role": "assistant", "content": item["content"][0]["text"]}


@pytest.mark.parametrize(("api", "mode"), [("chat_completions", "asked"), ("responses", "always")])
async def test_every_turn_carries_ids_that_extend_across_turns(
    api: str, mode: LogprobsMode
) -> None:
    row = await rollout(api, mode)
    output = row["response"]["output"]
    turns = turn_tokens(output)
    model_items = [i for i in output if i["type"] != "function_call_output"]
    assert len(turns) == len(model_items) >= 3  # one call per turn, then the answer
    for item in turns:
        assert item["generation_token_ids"] == generation_token_ids(assistant_message(item))
        assert len(item["generation_log_probs"]) == len(item["generation_token_ids"])
        assert all(-4.0 < p <= 0.0 for p in item["generation_log_probs"])
    for previous, current in itertools.pairwise(turns):
        grown = previous["prompt_token_ids"] + previous["generation_token_ids"]
        assert current["prompt_token_ids"][: len(grown)] == grown
        assert len(current["prompt_token_ids"]) > len(grown)  # the tool output came in between
    assert row["_gs_token_prefix_breaks"] == 0
    again = await rollout(api, mode)
    assert turn_tokens(again["response"]["output"]) == turns  # deterministic


@pytest.mark.parametrize(("api", "mode"), [("chat_completions", "never"), ("responses", "asked")])
async def test_a_server_that_drops_them_fails_the_rollout_typed(
    api: str, mode: LogprobsMode
) -> None:
    with pytest.raises(ModelResponseError) as caught:
        await rollout(api, mode)
    assert caught.value.failure_class is FailureClass.MODEL_TOKEN_IDS_MISSING


async def test_unasked_answers_stay_as_before_and_tokenize_renders_the_prompt() -> None:
    server = await serve_scripted()
    messages = [{"role": "user", "content": "Hello there, what is the weather?"}]
    try:
        async with httpx.AsyncClient() as http:
            plain = (
                await http.post(f"{server.url}/chat/completions", json={"messages": messages})
            ).json()
            tokenized = (
                await http.post(
                    server.url.removesuffix("/v1") + "/tokenize", json={"messages": messages}
                )
            ).json()
    finally:
        server.close()
        await server.wait_closed()
    assert plain["choices"][0]["logprobs"] is None
    assert "prompt_token_ids" not in plain
    assert tokenized["tokens"] == prompt_token_ids(messages)
    assert tokenized["count"] == len(tokenized["tokens"])
