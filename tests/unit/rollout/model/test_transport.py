"""The aiohttp-backed httpx transport: real loopback requests, and httpx's exception types."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from gymstream.errors import ModelCallError
from gymstream.rollout.model.client import HttpModelClient, build_model_client
from gymstream.rollout.model.transport import AiohttpTransport
from gymstream.settings import ModelSettings, RetrySettings
from gymstream.testing.server import serve_scripted


def client(timeout_s: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=4), timeout=httpx.Timeout(timeout_s)
    )


async def test_round_trip_against_the_scripted_model() -> None:
    server = await serve_scripted()
    try:
        async with client() as http:
            answers = await asyncio.gather(
                *(
                    http.post(f"{server.url}/responses", json={"model": "m", "input": "hi"})
                    for _ in range(10)  # more than the 4 connections: requests queue for them
                )
            )
            models = await http.get(f"{server.url}/models")
    finally:
        server.close()
        await server.wait_closed()
    assert {a.status_code for a in answers} == {200}
    assert all(a.json()["object"] == "response" for a in answers)
    assert models.status_code == 200


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/v1/responses", json={})


async def test_a_hang_is_a_timeout() -> None:
    server = await serve_scripted(hang_rate=1.0)
    try:
        async with client(timeout_s=0.3) as http:
            with pytest.raises(httpx.TimeoutException):
                await http.post(f"{server.url}/responses", json={"model": "m", "input": "hi"})
    finally:
        server.close()
        await server.wait_closed()


# The model client calls the transport directly when it owns its pool (its hot path, which
# skips httpx's request and response objects): the same classification must come out.


def fast_client(url: str, **retry: float) -> HttpModelClient:
    settings = ModelSettings(base_url=url, name="m", timeout_s=0.5, connect_timeout_s=0.5)
    fields: dict[str, float] = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02} | retry
    retry_settings = RetrySettings(max_attempts=2).model_copy(update=fields)
    client = build_model_client(settings, retry_settings)
    assert client._fast is not None  # the hot path is the one under test
    return client


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_fast_path_round_trip(api: str) -> None:
    server = await serve_scripted()
    settings = ModelSettings(base_url=server.url, name="m", api=api)
    client = build_model_client(settings, RetrySettings())
    try:
        answer = await client.create({"input": "hello", "model": "m"})
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert answer["output"][-1]["type"] == "message"


async def test_fast_path_5xx_is_retried_then_typed() -> None:
    server = await serve_scripted(error_rate=1.0)
    client = fast_client(server.url)
    try:
        with pytest.raises(ModelCallError) as info:
            await client.create({"input": "hello"})
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert info.value.failure_class == "model_http_5xx"
    assert info.value.http_status is not None
    assert info.value.http_status >= 500
    assert info.value.attempts == 2
    assert server.requests == 2


async def test_fast_path_refused_and_hung_are_typed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = fast_client(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ModelCallError) as info:
        await refused.create({"input": "x"})
    await refused.aclose()
    assert info.value.failure_class == "model_connection_error"

    server = await serve_scripted(hang_rate=1.0)
    hung = fast_client(server.url)
    try:
        with pytest.raises(ModelCallError) as info:
            await hung.create({"input": "x"})
    finally:
        await hung.aclose()
        server.close()
        await server.wait_closed()
    assert info.value.failure_class == "model_timeout"
