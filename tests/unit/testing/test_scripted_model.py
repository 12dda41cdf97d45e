"""The scripted model server: OpenAI wire format (official client), faults, HTTP, agent runs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gymstream.errors import ModelCallError
from gymstream.rollout.environment import load_environment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import build_model_client
from gymstream.settings import ModelSettings, RetrySettings
from gymstream.testing.server import ScriptedServer, serve_scripted
from gymstream.testing.thread import start_scripted_in_thread

ENVIRONMENTS = Path(__file__).resolve().parents[3] / "environments"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": ""}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
    "description": "",
}
CHAT_WEATHER_TOOL = {
    "type": "function",
    "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"},
}


def rows(name: str) -> list[dict[str, Any]]:
    path = ENVIRONMENTS / name / "data" / "example.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with await serve_scripted() as running:
        yield running


@pytest.fixture
async def oai(server: ScriptedServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=server.url, api_key="unused", max_retries=0)
    yield client
    await client.close()


async def test_openai_responses_tool_call_then_text(oai: openai.AsyncOpenAI) -> None:
    first = await oai.responses.create(
        model="policy",
        input=[{"role": "user", "content": "what's it like in sf?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert first.object == "response"
    assert first.status == "completed"
    assert first.model == "policy"
    (call,) = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "San Francisco"}
    assert call.call_id
    assert first.usage is not None
    assert first.usage.output_tokens > 0

    second = await oai.responses.create(
        model="policy",
        input=[
            {"role": "user", "content": "what's it like in sf?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": '{"city": "San Francisco", "weather_description": "cold"}',
            },
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    (answer,) = second.output
    assert answer.type == "message"
    assert "cold" in second.output_text


async def test_openai_chat_completions_tool_call_then_text(oai: openai.AsyncOpenAI) -> None:
    first = await oai.chat.completions.create(
        model="policy",
        messages=[{"role": "user", "content": "weather for 3 cities in the us"}],
        tools=[CHAT_WEATHER_TOOL],  # type: ignore[list-item]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    cities = [json.loads(c.function.arguments)["city"] for c in calls]  # type: ignore[union-attr]
    assert cities == ["New York", "Los Angeles", "Chicago"]
    assert first.usage is not None
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens

    second = await oai.chat.completions.create(
        model="policy",
        messages=[
            {"role": "user", "content": "weather in nyc"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"New York"}'},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": '{"city": "New York", "weather_description": "It is cold."}',
            },
        ],
        tools=[CHAT_WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert second.choices[0].finish_reason == "stop"
    assert "It is cold." in (second.choices[0].message.content or "")


async def test_openai_models_list(oai: openai.AsyncOpenAI) -> None:
    models = await oai.models.list()
    assert [m.id for m in models.data] == ["scripted"]


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_agent_single_tool_call_all_reward_one(server: ScriptedServer, api: str) -> None:
    env = load_environment("example_single_tool_call")
    settings = ModelSettings(base_url=server.url, api=api)
    client = build_model_client(settings, RetrySettings())
    try:
        results = [await run_rollout(r, env, client, model_name="policy") for r in rows(env.name)]
    finally:
        await client.aclose()
    assert [r.verify_result["reward"] for r in results] == [1.0] * 5
    for result in results:
        output = result.verify_result["response"]["output"]
        assert output[0]["type"] == "function_call"
        assert output[-1]["type"] == "message"
        assert result.tool_errors == 0


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_agent_multi_step_rewards_vary(server: ScriptedServer, api: str) -> None:
    env = load_environment("example_multi_step")
    settings = ModelSettings(base_url=server.url, api=api)
    client = build_model_client(settings, RetrySettings())
    rewards: list[float] = []
    try:
        for seed in range(6):
            for row in rows(env.name):
                result = await run_rollout(
                    row, env, client, model_name="policy", overrides={"seed": seed}
                )
                rewards.append(result.verify_result["reward"])
                assert result.tool_errors == 0
                # parallel_tool_calls is false in these rows: one lookup per turn, then
                # extract, then the answer
                assert result.turns == len(result.verify_result["parsed_synonym_values"]) + 2
    finally:
        await client.aclose()
    assert len(rewards) == 30
    assert 0.0 in rewards
    assert sum(rewards) > len(rewards) / 2


async def test_default_seed_already_varies_on_the_five_rows(server: ScriptedServer) -> None:
    env = load_environment("example_multi_step")
    client = build_model_client(ModelSettings(base_url=server.url), RetrySettings())
    try:
        results = [await run_rollout(r, env, client, model_name="p") for r in rows(env.name)]
    finally:
        await client.aclose()
    rewards = [r.verify_result["reward"] for r in results]
    assert 0.0 in rewards
    assert rewards.count(1.0) >= 3


async def test_same_conversation_same_answer(server: ScriptedServer) -> None:
    env = load_environment("example_multi_step")
    client = build_model_client(ModelSettings(base_url=server.url), RetrySettings())
    row = rows(env.name)[2]
    try:
        a = await run_rollout(row, env, client, model_name="p")
        b = await run_rollout(row, env, client, model_name="p")
    finally:
        await client.aclose()

    def calls(result: Any) -> list[tuple[str, str]]:
        output = result.verify_result["response"]["output"]
        return [(i["name"], i["arguments"]) for i in output if i["type"] == "function_call"]

    assert calls(a) == calls(b)
    assert a.verify_result["reward"] == b.verify_result["reward"]


async def test_error_rate_one_fails_every_model_request() -> None:
    async with await serve_scripted(error_rate=1.0) as server:
        settings = ModelSettings(base_url=server.url)
        retry = RetrySettings(max_attempts=2, backoff_initial_s=0.001, backoff_max_s=0.001)
        client = build_model_client(settings, retry)
        try:
            with pytest.raises(ModelCallError) as info:
                await client.create({"model": "p", "input": "hi"})
        finally:
            await client.aclose()
        assert info.value.failure_class == "model_http_5xx"
        assert info.value.http_status in (500, 503)
        assert server.stats["errors_injected"] == 2
        assert server.requests == 2


async def test_error_rate_is_a_fraction_with_seeded_draws() -> None:
    async with (
        await serve_scripted(error_rate=0.3, seed=5) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        statuses = [
            (await http.post("/responses", json={"input": "hi"})).status_code for _ in range(200)
        ]
    failures = sum(s in (500, 503) for s in statuses)
    assert set(statuses) <= {200, 500, 503}
    assert 30 <= failures <= 90
    assert server.stats["errors_injected"] == failures


async def test_hang_rate_one_times_out_client() -> None:
    async with await serve_scripted(hang_rate=1.0) as server:
        # 2 s, not 0.2: a client that gives up before the server has read the request closes
        # the connection and the server never counts the hang (seen under load on 2 cores)
        settings = ModelSettings(base_url=server.url, timeout_s=2.0)
        client = build_model_client(settings, RetrySettings(max_attempts=1))
        try:
            with pytest.raises(ModelCallError) as info:
                await client.create({"model": "p", "input": "hi"})
        finally:
            await client.aclose()
        assert info.value.failure_class == "model_timeout"
        # the server counts the hang when it handles the request: wait for it, bounded
        async with asyncio.timeout(10):
            while server.stats["hangs_injected"] < 1:  # noqa: ASYNC110 - stats has no event
                await asyncio.sleep(0.02)
        assert server.stats["hangs_injected"] == 1


async def test_latency_still_answers() -> None:
    async with (
        await serve_scripted(latency_ms=20) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        answers = await asyncio.gather(
            *(http.post("/chat/completions", json={"messages": []}) for _ in range(5))
        )
    assert [a.status_code for a in answers] == [200] * 5
    assert server.stats["chat/completions"] == 5


async def raw_exchange(server: ScriptedServer, payload: bytes, responses: int) -> list[bytes]:
    """Send raw bytes, read ``responses`` HTTP responses (Content-Length framed)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(payload)
    await writer.drain()
    answers = []
    for _ in range(responses):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        answers.append(head + await asyncio.wait_for(reader.readexactly(length), 5))
    writer.close()
    return answers


def request(path: str, body: bytes = b"", extra: bytes = b"") -> bytes:
    method = b"POST" if body else b"GET"
    return (
        method
        + b" "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
        + extra
        + b"\r\n"
        + body
    )


async def test_pipelined_requests_are_answered_in_order(server: ScriptedServer) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    answers = await raw_exchange(
        server,
        request("/v1/models") + request("/v1/chat/completions", body) + request("/nope"),
        3,
    )
    assert answers[0].startswith(b"HTTP/1.1 200")
    assert b'"scripted"' in answers[0]
    assert answers[1].startswith(b"HTTP/1.1 200")
    assert b"chat.completion" in answers[1]
    assert answers[2].startswith(b"HTTP/1.1 404")
    assert server.requests == 3


async def test_pipelined_requests_behind_a_delayed_answer_are_served() -> None:
    async with await serve_scripted(latency_ms=10) as server:
        answers = await raw_exchange(server, request("/v1/models") + request("/v1/models"), 2)
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 2
    assert server.stats["models"] == 2


async def test_bad_requests_get_400_and_chunked_411(server: ScriptedServer) -> None:
    (not_json,) = await raw_exchange(server, request("/v1/responses", b"{oops"), 1)
    assert not_json.startswith(b"HTTP/1.1 400")
    (streaming,) = await raw_exchange(server, request("/v1/responses", b'{"stream": true}'), 1)
    assert streaming.startswith(b"HTTP/1.1 400")
    assert b"stream" in streaming
    chunked = b"POST /v1/responses HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    (answer,) = await raw_exchange(server, chunked, 1)
    assert answer.startswith(b"HTTP/1.1 411")
    assert b"Connection: close" in answer


async def test_connection_close_is_honoured(server: ScriptedServer) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(request("/v1/models", extra=b"Connection: close\r\n"))
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)  # returns at EOF: the server closed
    writer.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in data


def test_thread_handle_serves_and_stops() -> None:
    handle = start_scripted_in_thread()
    try:
        assert handle.url == f"http://127.0.0.1:{handle.port}/v1"
        answer = httpx.get(f"{handle.url}/models")
        assert answer.json()["data"][0]["id"] == "scripted"
        assert handle.server.requests == 1
    finally:
        handle.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.url}/models")


def test_thread_handle_reports_bad_settings() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        start_scripted_in_thread(error_rate=1.5)


def test_cli_serve_scripted_prints_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gymstream.cli.main", "model", "serve-scripted", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ENVIRONMENTS.parent,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("scripted model listening on http://127.0.0.1:")
        url = first.split()[-1]
        assert url.endswith("/v1")
        assert httpx.get(f"{url}/models", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0
    assert "models=1" in stderr


def test_cli_rejects_rates_over_one() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gymstream.cli.main",
            "model",
            "serve-scripted",
            "--error-rate",
            "0.7",
            "--hang-rate",
            "0.7",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=ENVIRONMENTS.parent,
    )
    assert result.returncode == 2
    assert "must not exceed 1" in result.stderr


def test_latency_jitter_spreads_delays_around_the_same_mean() -> None:
    server = ScriptedServer(latency_ms=500, latency_jitter_ms=250, seed=3)
    delays = [server.faults.delay() for _ in range(4000)]
    assert min(delays) >= 0.25
    assert max(delays) <= 0.75
    assert abs(sum(delays) / len(delays) - 0.5) < 0.01
    assert len({round(d, 3) for d in delays}) > 100  # spread, not a few fixed values
    assert ScriptedServer(latency_ms=500).faults.delay() == 0.5


def test_latency_jitter_does_not_shift_fault_draws() -> None:
    plain = ScriptedServer(latency_ms=100, error_rate=0.5, seed=7)
    jittered = ScriptedServer(latency_ms=100, latency_jitter_ms=50, error_rate=0.5, seed=7)
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    statuses = [
        [s._answer("POST", "/v1/chat/completions", body)[1] for _ in range(50)]
        for s in (plain, jittered)
    ]
    assert statuses[0] == statuses[1]
    assert 0 < statuses[0].count(200) < 50


@pytest.mark.parametrize("jitter", [-1.0, 600.0])
def test_latency_jitter_out_of_range_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match="latency_jitter_ms"):
        ScriptedServer(latency_ms=500, latency_jitter_ms=jitter)


def test_deeply_nested_tool_arguments_are_no_traceback() -> None:
    """Issue 19 item 7e: arguments nested past the recursion limit read as unusable, quietly."""
    from gymstream.testing.conversation import Call, decode_json, pending_calls

    deep = "[" * 100_000 + "]" * 100_000
    assert decode_json(deep) is None
    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    made = [Call(call_id="c1", name="f", arguments=nested)]
    assert pending_calls([("f", {"x": 1})], made) == [("f", {"x": 1})]
