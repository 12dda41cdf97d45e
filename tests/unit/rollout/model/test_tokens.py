"""Token ids and log-probs through the model client: what is asked, read, placed, refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gymstream.errors import ModelResponseError
from gymstream.nemo_gym.config.agents import load_config, resolve_model
from gymstream.rollout.model.chat import responses_to_chat_request
from gymstream.rollout.model.client import HttpModelClient
from gymstream.rollout.model.response import chat_to_response
from gymstream.rollout.model.tokens import (
    TOKEN_REQUEST,
    check_response_tokens,
    read_chat_tokens,
)
from gymstream.settings import ModelSettings, RetrySettings
from gymstream.wire.messages import FailureClass

URL = "http://model.test/v1/chat/completions"
TOKENS = {
    "prompt_token_ids": [1, 2, 3],
    "generation_token_ids": [7, 8],
    "generation_log_probs": [-0.5, -0.25],
}


def chat_answer(
    *,
    logprobs: Any = ...,
    prompt: list[int] | None = None,
    token_ids: list[int] | None = None,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A vLLM-shaped chat completion: one tool call, generation ids 7 and 8 unless told."""
    if logprobs is ...:
        logprobs = {
            "content": [
                {"token": "token_id:7", "logprob": -0.5, "bytes": None, "top_logprobs": []},
                {"token": "token_id:8", "logprob": -0.25, "bytes": None, "top_logprobs": []},
            ]
        }
    choice: dict[str, Any] = {
        "index": 0,
        "message": message
        or {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        "finish_reason": "tool_calls",
        "logprobs": logprobs,
    }
    if token_ids is not None:
        choice["token_ids"] = token_ids
    answer: dict[str, Any] = {"id": "x", "choices": [choice]}
    if prompt is not None:
        answer["prompt_token_ids"] = prompt
    return answer


def failure_of(call: Any) -> ModelResponseError:
    with pytest.raises(ModelResponseError) as caught:
        call()
    assert caught.value.failure_class is FailureClass.MODEL_TOKEN_IDS_MISSING
    assert not caught.value.retriable
    return caught.value


def test_reads_generation_ids_and_log_probs_from_token_id_strings() -> None:
    bundle, ids, log_probs = read_chat_tokens(chat_answer(prompt=[1, 2, 3], token_ids=[7, 8]), URL)
    assert bundle is None
    assert ids == [7, 8]
    assert log_probs == [-0.5, -0.25]


def test_a_complete_bundle_on_the_message_wins() -> None:
    message = {"role": "assistant", "content": "hi", **TOKENS}
    bundle, ids, _ = read_chat_tokens(chat_answer(logprobs=None, message=message), URL)
    assert bundle == TOKENS
    assert ids == [7, 8]


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (chat_answer(logprobs=None), "choice.logprobs=None"),
        (
            chat_answer(logprobs={"content": [{"token": "hello", "logprob": -1.0}]}),
            "content[0].token is 'hello', not 'token_id:<n>'",
        ),
        (
            chat_answer(logprobs={"content": [{"token": "token_id:x1", "logprob": -1.0}]}),
            "not 'token_id:<n>'",
        ),
        (
            chat_answer(logprobs={"content": [{"token": "token_id:1", "logprob": "low"}]}),
            "content[0].logprob is not a number",
        ),
        (chat_answer(token_ids=[7, 9]), "choice.token_ids disagree"),
        (
            chat_answer(message={"role": "assistant", "prompt_token_ids": [1]}),
            "partial token ids (missing generation_log_probs, generation_token_ids)",
        ),
        (
            chat_answer(message={**TOKENS, "generation_log_probs": [-1.0]}),
            "2 generation token ids but 1 log-probs",
        ),
    ],
)
def test_missing_or_malformed_token_ids_are_a_typed_terminal_failure(
    answer: dict[str, Any], says: str
) -> None:
    error = failure_of(lambda: read_chat_tokens(answer, URL))
    assert says in str(error)
    assert "return_tokens_as_token_ids" in str(error)  # names what the server must honour
    assert URL in str(error)


def test_no_choice_at_all_is_a_malformed_answer() -> None:
    with pytest.raises(ModelResponseError) as caught:
        read_chat_tokens({"choices": []}, URL)
    assert caught.value.failure_class is FailureClass.MODEL_MALFORMED_RESPONSE


def test_a_responses_answer_must_carry_them_on_its_last_item() -> None:
    item = {"type": "message", "role": "assistant", "content": []}
    check_response_tokens({"output": [{"type": "reasoning"}, {**item, **TOKENS}]}, URL)
    error = failure_of(lambda: check_response_tokens({"output": [item]}, URL))
    assert "return_token_id_information: true" in str(error)
    error = failure_of(
        lambda: check_response_tokens(
            {"output": [{**item, **TOKENS, "generation_token_ids": [1]}]}, URL
        )
    )
    assert "1 generation token ids but 2 log-probs" in str(error)


def test_fields_go_last_on_the_turns_last_output_item() -> None:
    answer = chat_answer()
    answer["choices"][0]["message"]["content"] = "thinking aloud"
    response = chat_to_response(answer, {"model": "m"}, TOKENS)
    message, call = response["output"]
    assert "prompt_token_ids" not in message
    assert list(call)[-3:] == list(TOKENS)
    assert {k: call[k] for k in TOKENS} == TOKENS


def test_an_empty_turn_becomes_an_empty_message_carrying_them() -> None:
    answer = chat_answer(message={"role": "assistant", "content": ""})
    (item,) = chat_to_response(answer, {}, TOKENS)["output"]
    assert item["type"] == "message"
    assert item["content"][0]["text"] == ""
    assert item["prompt_token_ids"] == [1, 2, 3]
    assert chat_to_response(answer, {})["output"] == []  # unchanged without token ids


def test_the_next_request_carries_them_back_on_the_assistant_message() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    params = {
        "input": [
            {"role": "user", "content": "go"},
            {"type": "message", "role": "assistant", "content": "let me look"},
            {**call, **TOKENS},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ]
    }
    _user, assistant, tool = responses_to_chat_request(params, token_ids=True)["messages"]
    assert assistant["content"] == "let me look"
    assert assistant["tool_calls"][0]["id"] == "c1"
    assert {k: assistant[k] for k in TOKENS} == TOKENS
    assert tool["role"] == "tool"
    plain = responses_to_chat_request(params)["messages"][1]
    assert "prompt_token_ids" not in plain  # never sent to a server that was not asked


class Recorder:
    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, content=msgspec.json.encode(self.answers.pop(0)))


def client(
    recorder: Recorder, *, api: str = "chat_completions", on: bool = True
) -> HttpModelClient:
    settings = ModelSettings(
        base_url="http://model.test/v1", api=api, return_token_id_information=on
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return HttpModelClient(settings, RetrySettings(max_attempts=1), http)


async def test_the_chat_request_asks_vllm_and_the_answer_lands_on_the_last_item() -> None:
    recorder = Recorder(chat_answer(prompt=[1, 2, 3], token_ids=[7, 8]))
    response = await client(recorder).create({"model": "m", "input": "hi"})
    (request,) = recorder.requests
    body = msgspec.json.decode(request.content)
    assert {k: body[k] for k in TOKEN_REQUEST} == {
        "logprobs": True,
        "top_logprobs": 0,
        "return_tokens_as_token_ids": True,
        "return_token_ids": True,
    }
    assert {k: response["output"][-1][k] for k in TOKENS} == TOKENS


async def test_without_prompt_ids_the_prompt_comes_from_tokenize() -> None:
    recorder = Recorder(chat_answer(), {"count": 3, "max_model_len": 99, "tokens": [1, 2, 3]})
    response = await client(recorder).create(
        {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}]}
    )
    chat, tokenize = recorder.requests
    assert str(tokenize.url) == "http://model.test/tokenize"  # vLLM serves it at the root
    sent = msgspec.json.decode(tokenize.content)
    assert sent["messages"] == msgspec.json.decode(chat.content)["messages"]
    assert sent["tools"][0]["function"]["name"] == "f"
    assert set(sent) == {"model", "messages", "tools"}
    assert response["output"][-1]["prompt_token_ids"] == [1, 2, 3]


async def test_off_by_default_nothing_is_asked_and_nothing_is_checked() -> None:
    recorder = Recorder(chat_answer(logprobs=None))
    response = await client(recorder, on=False).create({"model": "m", "input": "hi"})
    body = msgspec.json.decode(recorder.requests[0].content)
    assert not set(TOKEN_REQUEST) & set(body)
    assert "prompt_token_ids" not in response["output"][-1]


async def test_responses_api_passes_them_through_or_fails_typed() -> None:
    item = {"type": "message", "role": "assistant", "content": [], **TOKENS}
    recorder = Recorder({"output": [item]}, {"output": [{"type": "message", "content": []}]})
    model = client(recorder, api="responses")
    assert (await model.create({"input": "hi"}))["output"] == [item]
    with pytest.raises(ModelResponseError) as caught:
        await model.create({"input": "hi"})
    assert caught.value.failure_class is FailureClass.MODEL_TOKEN_IDS_MISSING


def test_the_option_from_env_yaml_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ModelSettings().return_token_id_information is False
    monkeypatch.setenv("GYMSTREAM_MODEL_RETURN_TOKEN_IDS", "true")
    assert ModelSettings().return_token_id_information is True
    monkeypatch.delenv("GYMSTREAM_MODEL_RETURN_TOKEN_IDS")
    extra = tmp_path / "model.yaml"
    extra.write_text(
        "agents:\n  a:\n    environment: example_single_tool_call\n"
        "models:\n  policy_model:\n    return_token_id_information: true\n"
    )
    config = load_config([extra])
    assert resolve_model(config, "a", {}, ModelSettings()).return_token_id_information is True
    off = resolve_model(config, "a", {"return_token_id_information": False}, ModelSettings())
    assert off.return_token_id_information is False
