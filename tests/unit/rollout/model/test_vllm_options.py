"""vllm_model's body rules (``model.vllm``) and the spread client's server choice, in isolation.

The same rules against NeMo Gym's real vllm_model: tests/compat/test_vllm_model.py."""

from __future__ import annotations

from typing import Any

import pytest

from gymstream.errors import ModelResponseError
from gymstream.nemo_gym.servers.vllm_model import prepare_chat, reasoning_texts
from gymstream.rollout.model.spread import SpreadModelClient, model_session
from gymstream.settings import VllmOptions
from gymstream.wire.messages import FailureClass


def test_a_requests_own_chat_template_kwargs_are_dropped_unless_forwarded() -> None:
    chat: dict[str, Any] = {"messages": [], "chat_template_kwargs": {"a": 1}, "top_logprobs": None}
    options = VllmOptions(chat_template_kwargs={"b": 2})
    assert prepare_chat(dict(chat), {}, options) == {
        "messages": [],
        "chat_template_kwargs": {"b": 2},
    }
    forwarded = VllmOptions(
        chat_template_kwargs={"b": 2}, forward_request_chat_template_kwargs=True
    )
    assert prepare_chat(dict(chat), {}, forwarded)["chat_template_kwargs"] == {"b": 2, "a": 1}


def test_the_body_wins_over_extra_body_and_sampling_overrides_over_both() -> None:
    chat = {"messages": [], "temperature": 1.0, "top_p": 0.5}
    params = {"metadata": {"extra_body": '{"seed": 3}'}}
    options = VllmOptions(
        extra_body={"temperature": 0.1, "top_k": 4}, sampling_overrides={"top_p": 1}
    )
    assert prepare_chat(chat, params, options) == {
        "temperature": 1.0,
        "top_k": 4,
        "seed": 3,
        "messages": [],
        "top_p": 1,
    }


@pytest.mark.parametrize("text", ["{not json", "[1]", "7"])
def test_metadata_that_is_not_a_json_object_is_a_terminal_request_error(text: str) -> None:
    with pytest.raises(ModelResponseError) as caught:
        prepare_chat({"messages": []}, {"metadata": {"extra_body": text}}, VllmOptions())
    assert caught.value.failure_class == FailureClass.MODEL_REQUEST_UNSUPPORTED
    assert "metadata.extra_body" in str(caught.value)


def test_reasoning_comes_from_the_field_and_the_think_tags() -> None:
    message = {"reasoning_content": "a", "content": "<think>b</think>answer"}
    assert reasoning_texts(message) == (["a", "b"], "answer")
    assert reasoning_texts({"content": None}) == ([], None)


class _Server:
    def __init__(self, index: int, log: list[int]) -> None:
        self.index = index
        self.log = log
        self.url = f"http://s{index}/v1"

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        self.log.append(self.index)
        return {"output": []}

    async def aclose(self) -> None:
        pass


async def test_a_session_keeps_its_server_and_calls_outside_one_go_round_robin() -> None:
    log: list[int] = []
    spread = SpreadModelClient([_Server(0, log), _Server(1, log), _Server(2, log)])  # type: ignore[list-item]
    for _ in range(2):
        with model_session():
            for _ in range(3):
                await spread.create({})
    assert log == [0, 0, 0, 1, 1, 1]
    log.clear()
    for _ in range(4):
        await spread.create({})
    assert log == [2, 0, 1, 2]
