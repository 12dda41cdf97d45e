"""Model client against httpx.MockTransport: retries, typed failures, chat conversion, secrets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest

from gymstream.errors import ModelCallError, ModelResponseError
from gymstream.rollout.model.client import (
    MAX_RETRY_AFTER_S,
    HttpModelClient,
    backoff_delay_s,
    build_model_client,
    parse_retry_after_s,
)
from gymstream.rollout.model.transport import AiohttpTransport
from gymstream.settings import ModelSettings, RetrySettings

BASE_URL = "http://model.test/v1"
API_KEY = "sk-test-SECRET-9f8e7d"
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "output": [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hi"}],
        }
    ],
    "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
}
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and records requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(body: Any = RESPONSE) -> httpx.Response:
    return httpx.Response(200, content=msgspec.json.encode(body))


def make_client(
    handler: Handler,
    *,
    api: str = "responses",
    api_key: str | None = None,
    max_attempts: int = 3,
    sleeps: list[float] | None = None,
) -> HttpModelClient:
    settings = ModelSettings(base_url=BASE_URL, api=api, api_key=api_key)
    retry = RetrySettings(max_attempts=max_attempts, backoff_initial_s=0.5, backoff_max_s=4.0)
    recorded = sleeps if sleeps is not None else []

    async def fake_sleep(delay: float) -> None:
        recorded.append(delay)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpModelClient(settings, retry, http, sleep=fake_sleep, draw=lambda: 1.0)


async def test_responses_api_posts_body_and_returns_response() -> None:
    recorder = Recorder(ok())
    client = make_client(recorder)
    result = await client.create({"model": "m", "input": "hello"})
    assert result == RESPONSE
    (request,) = recorder.requests
    assert str(request.url) == f"{BASE_URL}/responses"
    assert msgspec.json.decode(request.content) == {"model": "m", "input": "hello"}
    assert "authorization" not in request.headers


async def test_retries_503_then_succeeds_with_backoff() -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.Response(503), httpx.Response(502), ok())
    client = make_client(recorder, sleeps=sleeps)
    assert await client.create({"input": "x"}) == RESPONSE
    assert len(recorder.requests) == 3
    # draw() == 1.0, so full jitter gives the ceiling: initial * 2**(n-1)
    assert sleeps == [0.5, 1.0]


async def test_429_honours_retry_after() -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "2"}), ok())
    client = make_client(recorder, sleeps=sleeps)
    assert await client.create({"input": "x"}) == RESPONSE
    assert sleeps == [2.0]


async def test_retry_after_is_capped() -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.Response(503, headers={"Retry-After": "86400"}), ok())
    client = make_client(recorder, sleeps=sleeps)
    await client.create({"input": "x"})
    assert sleeps == [MAX_RETRY_AFTER_S]


async def test_429_budget_exhausted_raises_model_call_error() -> None:
    recorder = Recorder(httpx.Response(429, text="slow down"))
    client = make_client(recorder, max_attempts=3)
    with pytest.raises(ModelCallError) as info:
        await client.create({"input": "x"})
    error = info.value
    assert (error.failure_class, error.http_status, error.attempts) == ("model_http_429", 429, 3)
    assert error.retriable
    assert len(recorder.requests) == 3


async def test_5xx_budget_exhausted_names_status() -> None:
    client = make_client(Recorder(httpx.Response(500, text="boom")), max_attempts=2)
    with pytest.raises(ModelCallError) as info:
        await client.create({"input": "x"})
    assert (info.value.failure_class, info.value.http_status) == ("model_http_5xx", 500)
    assert "boom" in str(info.value)
    assert BASE_URL in str(info.value)


async def test_400_is_not_retried() -> None:
    recorder = Recorder(httpx.Response(400, text='{"error": "bad tool schema"}'), ok())
    client = make_client(recorder)
    with pytest.raises(ModelResponseError) as info:
        await client.create({"input": "x"})
    assert (info.value.failure_class, info.value.http_status) == ("model_http_4xx", 400)
    assert "bad tool schema" in str(info.value)
    assert not info.value.retriable
    assert len(recorder.requests) == 1


async def test_timeout_after_max_attempts_is_model_timeout() -> None:
    recorder = Recorder(httpx.ReadTimeout("read timed out"))
    client = make_client(recorder, max_attempts=4)
    with pytest.raises(ModelCallError) as info:
        await client.create({"input": "x"})
    assert (info.value.failure_class, info.value.attempts) == ("model_timeout", 4)
    assert info.value.http_status is None
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert len(recorder.requests) == 4


async def test_connection_error_is_retried_then_typed() -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    client = make_client(recorder, max_attempts=2)
    with pytest.raises(ModelCallError) as info:
        await client.create({"input": "x"})
    assert info.value.failure_class == "model_connection_error"
    assert len(recorder.requests) == 2


async def test_connection_error_then_success() -> None:
    recorder = Recorder(httpx.ConnectError("refused"), ok())
    client = make_client(recorder)
    assert await client.create({"input": "x"}) == RESPONSE


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, content=b'{"id": "resp_1"}'),
        httpx.Response(200, content=b"[1, 2]"),
    ],
)
async def test_malformed_body_is_not_retried(answer: httpx.Response) -> None:
    recorder = Recorder(answer, ok())
    client = make_client(recorder)
    with pytest.raises(ModelResponseError) as info:
        await client.create({"input": "x"})
    assert info.value.failure_class == "model_malformed_response"
    assert len(recorder.requests) == 1


async def test_api_key_sent_but_never_shown() -> None:
    recorder = Recorder(httpx.Response(401, text=f"invalid key {API_KEY}"))
    client = make_client(recorder, api_key=API_KEY)
    with pytest.raises(ModelResponseError) as info:
        await client.create({"input": "x"})
    assert recorder.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in str(info.value)
    assert API_KEY not in repr(info.value)
    assert API_KEY not in repr(client)


async def test_api_key_not_in_exhausted_retry_error() -> None:
    recorder = Recorder(httpx.Response(503, text=f"echo {API_KEY}"))
    client = make_client(recorder, api_key=API_KEY, max_attempts=2)
    with pytest.raises(ModelCallError) as info:
        await client.create({"input": "x"})
    assert API_KEY not in str(info.value)


async def test_chat_completions_round_trip() -> None:
    chat_answer = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "served",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"SF"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
    }
    recorder = Recorder(ok(chat_answer))
    client = make_client(recorder, api="chat_completions")
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    response = await client.create(
        {"model": "m", "input": "weather?", "tools": tools, "max_output_tokens": 32}
    )
    (request,) = recorder.requests
    assert str(request.url) == f"{BASE_URL}/chat/completions"
    sent = msgspec.json.decode(request.content)
    assert sent["messages"] == [{"role": "user", "content": "weather?"}]
    assert sent["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    assert sent["max_tokens"] == 32
    (call,) = response["output"]
    assert call["type"] == "function_call"
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_1",
        "get_weather",
        '{"city":"SF"}',
    )
    assert response["usage"]["input_tokens"] == 20
    assert response["usage"]["output_tokens"] == 7


async def test_chat_answer_without_choices_is_malformed() -> None:
    client = make_client(Recorder(ok({"id": "x"})), api="chat_completions")
    with pytest.raises(ModelResponseError) as info:
        await client.create({"input": "x"})
    assert info.value.failure_class == "model_malformed_response"


async def test_build_model_client_owns_and_closes_its_pool() -> None:
    settings = ModelSettings(base_url=BASE_URL, max_connections=20)
    client = build_model_client(settings, RetrySettings())
    assert client.url == f"{BASE_URL}/responses"
    http = client._http
    assert isinstance(http._transport, AiohttpTransport)
    assert http._transport._max_connections == 20
    await client.aclose()
    assert http.is_closed


async def test_shared_pool_is_not_closed_by_client() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(Recorder(ok())))
    client = build_model_client(ModelSettings(base_url=BASE_URL), RetrySettings(), http)
    await client.aclose()
    assert not http.is_closed
    await http.aclose()


def test_backoff_grows_then_caps() -> None:
    retry = RetrySettings(backoff_initial_s=0.5, backoff_max_s=3.0)
    assert [backoff_delay_s(n, retry, lambda: 1.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert backoff_delay_s(3, retry, lambda: 0.25) == 0.5


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after_s("3") == 3.0
    assert parse_retry_after_s(None) is None
    assert parse_retry_after_s("soon") is None
    assert parse_retry_after_s("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
