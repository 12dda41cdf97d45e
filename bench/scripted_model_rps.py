"""Requests/s the scripted model server sustains with ~64 concurrent clients (prints the figures).

The server runs in its own process (``gymstream model serve-scripted --port 0``), so the load
generator does not share its core. Three load generators, 64 concurrent requests each:
- one pooled ``httpx.AsyncClient``: on a 2-core box bounded by httpx's pool, not the server;
- gymstream's ``HttpModelClient`` (small httpx pools, see model_client.py), Responses API only;
- raw asyncio keep-alive connections: close to the server's own ceiling.
For each it also prints the server's CPU time per request (from /proc), the load-independent cost.
Usage: ``python bench/scripted_model_rps.py [--requests 20000] [--concurrency 64]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from gymstream.rollout.model.client import build_model_client
from gymstream.settings import ModelSettings, RetrySettings

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def first_row(name: str) -> dict[str, Any]:
    path = ROOT / "environments" / name / "data" / "example.jsonl"
    row: dict[str, Any] = json.loads(path.read_text().splitlines()[0])
    return row


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def drive(one: Callable[[], Awaitable[None]], total: int, concurrency: int) -> float:
    """Run ``total`` calls of ``one`` over ``concurrency`` workers; returns seconds taken."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def with_httpx(url: str, path: str, body: bytes, total: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:

        async def one() -> None:
            answer = await http.post(path, content=body, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")

        await drive(one, concurrency * 4, concurrency)  # warm-up: open the connections
        return await drive(one, total, concurrency)


async def with_model_client(
    url: str, path: str, body: bytes, total: int, concurrency: int
) -> float:
    client = build_model_client(ModelSettings(base_url=url), RetrySettings(max_attempts=1))
    params = json.loads(body)

    async def one() -> None:
        await client.create(params)

    try:
        await drive(one, concurrency * 4, concurrency)
        return await drive(one, total, concurrency)
    finally:
        await client.aclose()


async def with_raw(url: str, path: str, body: bytes, total: int, concurrency: int) -> float:
    parsed = httpx.URL(url)
    request = (
        b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % ((parsed.path + path).encode(), len(body))
    ) + body
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(await asyncio.open_connection(parsed.host, parsed.port))

    async def one() -> None:
        reader, writer = await pool.get()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        pool.put_nowait((reader, writer))

    await drive(one, concurrency * 4, concurrency)
    taken = await drive(one, total, concurrency)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "gymstream.cli.main", "model", "serve-scripted", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        if server.stdout is None:
            raise RuntimeError("no stdout from the server process")
        url = server.stdout.readline().split()[-1]
        weather = first_row("example_single_tool_call")["responses_create_params"]
        multi = first_row("example_multi_step")["responses_create_params"]
        chat = {
            "model": "p",
            "messages": weather["input"],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        }
        cases = [
            ("POST /responses, get_weather turn (0.8 KB)", "/responses", {**weather, "model": "p"}),
            ("POST /responses, multi_step turn (11 KB)", "/responses", {**multi, "model": "p"}),
            ("POST /chat/completions, get_weather turn", "/chat/completions", chat),
        ]
        print(
            f"scripted model at {url}, latency 0 ms; {args.requests} requests per figure, "
            f"{args.concurrency} concurrent keep-alive clients; {os.cpu_count()} CPUs"
        )
        for label, path, request in cases:
            body = json.dumps(request).encode()
            runs = [("httpx pool", with_httpx), ("raw asyncio", with_raw)]
            if path == "/responses":
                runs.insert(1, ("model client", with_model_client))
            for client_name, run in runs:
                cpu_before = cpu_s(server.pid)
                taken = asyncio.run(run(url, path, body, args.requests, args.concurrency))
                server_cpu = cpu_s(server.pid) - cpu_before
                warm = args.concurrency * 4
                per_request_us = server_cpu / (args.requests + warm) * 1e6
                print(
                    f"  {label:44s} {client_name:12s} {args.requests / taken:8.0f} requests/s"
                    f"   server CPU {per_request_us:5.0f} us/request"
                )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
