"""The aiohttp-backed httpx transport: real loopback requests, and httpx's exception types."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from gymstream.http_transport import AiohttpTransport
from gymstream.scripted_model import serve_scripted


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
