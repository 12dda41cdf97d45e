"""The bare limit (a child process of the bench): the model calls of N rollouts, no Kafka.

``python -m bench.bare --mode raw|agent|httpx1 --url URL --input FILE --n N --concurrency C``
prints one JSON object. Every mode runs N rollouts of the input's rows (cycled) over a fixed pool
of C asyncio tasks:

- ``raw``: per rollout, send the agent's two request bodies (recorded once per distinct row by
  running the real agent) through gymstream's model client (``HttpModelClient.create``: its
  transport and connection pooling, its JSON encode/decode, nothing else); the bare limit.
- ``agent``: per rollout, ``gymstream.agent.run_rollout`` with the real environment and the
  same model client (tool call, verifier included): gymstream minus Kafka.
- ``raw_uvloop``: ``raw`` on uvloop's event loop, the loop gymstream's processes run on
  (``gymstream.eventloop``); ``raw`` itself is the plain asyncio loop the bare limit names.
- ``chat`` / ``chat_tokens``: as ``agent`` but over Chat Completions, without and with token ids
  and log-probs (``return_token_id_information``; the scripted model then sends vLLM's fields):
  what asking for token ids costs on the hot path.
- ``httpx1``: as ``raw`` but over ONE ``httpx.AsyncClient`` holding every connection (the
  model client's limits): shows what the model client's split into small pools saves.

A warm-up of ``min(C, N)`` rollouts opens the connections first and is not timed. CPU is this
process's own (``getrusage``) over the timed part only, so imports are excluded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

from gymstream.rollout.environment import load_environment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import build_model_client
from gymstream.settings import ModelSettings, RetrySettings

ENVIRONMENT = "example_single_tool_call"
MODEL_NAME = "scripted"
_ENCODER = msgspec.json.Encoder()


class _Recorder:
    """A ModelClient that records the request bodies the agent sends."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[dict[str, Any]] = []

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(params)
        answer: dict[str, Any] = await self.inner.create(params)
        return answer


async def pool(one: Callable[[int], Awaitable[int]], n: int, concurrency: int) -> int:
    """Run ``one(i)`` for i in range(n) over ``concurrency`` tasks; returns the sum of results."""
    next_index = 0
    total = 0

    async def worker() -> None:
        nonlocal next_index, total
        while next_index < n:
            index = next_index
            next_index += 1
            turns = await one(index)
            total += turns

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total


def _settings(url: str, mode: str = "raw") -> ModelSettings:
    if mode in ("chat", "chat_tokens"):
        return ModelSettings(
            base_url=url,
            name=MODEL_NAME,
            api="chat_completions",
            return_token_id_information=mode == "chat_tokens",
        )
    return ModelSettings(base_url=url, name=MODEL_NAME, api="responses")


async def _record(
    rows: list[dict[str, Any]], env: Any, client: Any
) -> tuple[list[list[dict[str, Any]]], int]:
    """Each row's request bodies, as the agent sends them (one agent run per distinct request)."""
    recorded: dict[bytes, list[dict[str, Any]]] = {}
    bodies: list[list[dict[str, Any]]] = []
    for row in rows:
        key = _ENCODER.encode(row["responses_create_params"])
        if key not in recorded:
            recorder = _Recorder(client)
            await run_rollout(row, env, recorder, model_name=MODEL_NAME)
            recorded[key] = recorder.sent
        bodies.append(recorded[key])
    return bodies, len(recorded)


async def run(mode: str, url: str, rows: list[dict[str, Any]], n: int, c: int) -> dict[str, Any]:
    settings = _settings(url, mode)
    env = load_environment(ENVIRONMENT)
    client = build_model_client(settings, RetrySettings())
    one: Callable[[int], Awaitable[int]]
    http: httpx.AsyncClient | None = None
    recordings = 0
    if mode in ("agent", "chat", "chat_tokens"):

        async def one(i: int) -> int:
            result = await run_rollout(rows[i % len(rows)], env, client, model_name=MODEL_NAME)
            return result.turns

    elif mode == "raw":
        bodies, recordings = await _record(rows, env, client)

        async def one(i: int) -> int:
            for body in bodies[i % len(bodies)]:
                await client.create(body)
            return len(bodies[i % len(bodies)])

    else:  # httpx1: one httpx.AsyncClient holding every connection
        bodies, recordings = await _record(rows, env, client)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
        )
        endpoint = f"{url.rstrip('/')}/responses"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}

        async def one(i: int) -> int:
            for body in bodies[i % len(bodies)]:
                answer = await http.post(endpoint, content=_ENCODER.encode(body), headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
                msgspec.json.decode(answer.content)
            return len(bodies[i % len(bodies)])

    warm = min(c, n)
    await pool(one, warm, c)
    cpu_before = _cpu_s()
    started = time.perf_counter()
    turns = await pool(one, n, c)
    elapsed = time.perf_counter() - started
    cpu = _cpu_s() - cpu_before
    await client.aclose()
    if http is not None:
        await http.aclose()
    return {
        "mode": mode,
        "n": n,
        "warmup": warm,
        "untimed_rollouts": warm + recordings,
        "concurrency": c,
        "elapsed_s": elapsed,
        "rate": n / elapsed,
        "cpu_s": cpu,
        "cpu_ms_per_rollout": cpu / n * 1000,
        "turns_per_rollout": turns / n,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _peak_rss_mib() -> float:
    """VmHWM: unlike ru_maxrss, it does not include the parent's memory from before exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=["raw", "raw_uvloop", "agent", "chat", "chat_tokens", "httpx1"],
        required=True,
    )
    parser.add_argument("--url", required=True, help="model base URL (ends in /v1)")
    parser.add_argument("--input", type=Path, required=True, help="JSONL rows")
    parser.add_argument("--n", type=int, required=True, help="rollouts")
    parser.add_argument("--concurrency", type=int, required=True, help="rollouts in flight")
    args = parser.parse_args()
    rows = [json.loads(x) for x in args.input.read_text().splitlines() if x.strip()]
    mode, loop = ("raw", "uvloop") if args.mode == "raw_uvloop" else (args.mode, "")
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        figures = runner.run(run(mode, args.url, rows, args.n, args.concurrency))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
