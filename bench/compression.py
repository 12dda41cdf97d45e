"""Bytes per rollout and throughput of each producer codec, on real NeMo Gym rows.

``python -m bench.compression --bootstrap B --log-dir DIR [--count 4000] [--codecs ...]``
prints a markdown table (and ``--json`` the figures). For every codec and both payloads (task
messages: the example environments' dataset rows; result messages: their recorded NeMo Gym
rollouts, ``example_rollouts.jsonl``, from gpt-4.1), it publishes ``count`` messages to a new
12-partition topic with gymstream's own producer (``gymstream.kafka.clients.build_producer``:
acks=all, idempotent, linger 5 ms, awaited windows of 4096 as the producer command does), then
reads them back.

- wire: bytes the producer's connections wrote while producing (counted at aiokafka's stream
  writers: Kafka's produce requests, batch headers and protocol included), per message;
- disk: the size of the topic's log segments in the broker's ``--log-dir`` (its
  ``node-1/data`` for `gymstream kafka start --data-dir D`), per message: Kafka keeps the
  producer's compressed batches as they came (topic compression.type=producer);
- throughput and this process's CPU per message, producing and consuming.

The 10 recorded rows are few: cycled as they are, a batch would hold the same text hundreds of
times and compress absurdly well. So every task gets its own text (the words of each string of
the row shuffled, seeded: same vocabulary and lengths, no repeated sentences) and is sent as a
group of ``--num-repeats`` rollouts (4), as a GRPO run does; a result keeps its group's prompt
and gets its own shuffled answer. Shuffled words compress worse than real prose, so the ratios
are if anything pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.kafka_floor import cpu_s, read_back, send_all
from gymstream.kafka.clients import build_producer, client_options
from gymstream.settings import Compression, KafkaSettings
from gymstream.wire.codec import ENCODER
from gymstream.wire.messages import ResultMessage, TaskMessage

ROOT = Path(__file__).resolve().parent.parent
ENVS = ("example_single_tool_call", "example_multi_step")
CODECS: tuple[Compression, ...] = ("none", "gzip", "snappy", "lz4", "zstd")
PARTITIONS = 12


def _rows(name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for env in ENVS:
        text = (ROOT / "environments" / env / "data" / name).read_text("utf-8")
        rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows


def scramble(value: Any, rng: random.Random) -> Any:
    """``value`` with the words of every string of 3+ words shuffled (keys, short strings kept)."""
    if isinstance(value, dict):
        return {k: scramble(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [scramble(v, rng) for v in value]
    if isinstance(value, str) and value.count(" ") >= 2:
        words = value.split(" ")
        rng.shuffle(words)
        return " ".join(words)
    return value


def payloads(kind: str, count: int, repeats: int) -> list[tuple[bytes, bytes]]:
    """``count`` (key, value) pairs of task or result messages: groups of ``repeats`` rollouts."""
    source = _rows("example.jsonl" if kind == "tasks" else "example_rollouts.jsonl")
    rng = random.Random(12)
    out: list[tuple[bytes, bytes]] = []
    task: dict[str, Any] = {}
    for i in range(count):
        task_index, rollout_index = divmod(i, repeats)
        base = source[task_index % len(source)]
        agent = f"{ENVS[(task_index % len(source)) * len(ENVS) // len(source)]}_simple_agent"
        rid = f"bench/{agent}/{task_index}/{rollout_index}"
        if rollout_index == 0:
            task = scramble({k: v for k, v in base.items() if k != "response"}, rng)
        now_ms = int(time.time() * 1000)
        if kind == "tasks":
            message: Any = TaskMessage(
                run_id="bench",
                rollout_id=rid,
                agent=agent,
                task_index=task_index,
                rollout_index=rollout_index,
                row=task,
                created_ms=now_ms,
            )
        else:
            response = scramble(base.get("response") or {}, rng)
            row = task | {"response": response | {"id": f"resp_{uuid.uuid4().hex}"}}
            message = ResultMessage(
                run_id="bench",
                rollout_id=rid,
                agent=agent,
                task_index=task_index,
                rollout_index=rollout_index,
                output=msgspec.Raw(ENCODER.encode(row)),
                reward=float(row.get("reward", 0.0)),
                created_ms=now_ms,
                worker_id=uuid.uuid4().hex[:12],
            )
        out.append((f"bench/{agent}/{task_index}".encode(), ENCODER.encode(message)))
    return out


class _WireCounter:
    """Counts the bytes aiokafka's connections write (it writes each request with one call)."""

    def __init__(self) -> None:
        self.bytes = 0
        self._original = asyncio.StreamWriter.write

    def __enter__(self) -> _WireCounter:
        original = self._original

        def write(writer: asyncio.StreamWriter, data: Any) -> None:
            self.bytes += len(data)
            original(writer, data)

        asyncio.StreamWriter.write = write  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.StreamWriter.write = self._original  # type: ignore[method-assign]


def _disk_bytes(log_dir: Path, topic: str) -> int:
    return sum(f.stat().st_size for f in log_dir.glob(f"{topic}-*/*.log"))


async def measure(
    bootstrap: str,
    log_dir: Path,
    codec: Compression,
    kind: str,
    messages: list[tuple[bytes, bytes]],
) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap=bootstrap, compression=codec)
    topic = f"bench-compression-{kind}-{codec}-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)], timeout_ms=30_000)
    finally:
        await admin.close()
    count = len(messages)
    producer = build_producer(kafka)
    await producer.start()
    try:
        with _WireCounter() as wire:
            cpu0, t0 = cpu_s(), time.perf_counter()
            # keyed, no partition: a group's rollouts share a partition, as in a run
            await send_all(producer, topic, ((key, value, None) for key, value in messages))
            produce_s, produce_cpu = time.perf_counter() - t0, cpu_s() - cpu0
    finally:
        await producer.stop()
    cpu0, t0 = cpu_s(), time.perf_counter()
    await read_back(kafka, topic, PARTITIONS, count)
    consume_s, consume_cpu = time.perf_counter() - t0, cpu_s() - cpu0
    raw = sum(len(v) for _, v in messages) / count
    return {
        "kind": kind,
        "codec": codec,
        "count": count,
        "value_bytes": raw,
        "wire_bytes": wire.bytes / count,
        "disk_bytes": _disk_bytes(log_dir, topic) / count,
        "produce_per_s": count / produce_s,
        "produce_cpu_us": produce_cpu / count * 1e6,
        "consume_per_s": count / consume_s,
        "consume_cpu_us": consume_cpu / count * 1e6,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| messages | codec | value B | wire B | disk B | disk / none | produce msg/s | "
        "produce CPU us | consume msg/s | consume CPU us |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    base = {r["kind"]: r["disk_bytes"] for r in rows if r["codec"] == "none"}
    for r in rows:
        ratio = r["disk_bytes"] / base[r["kind"]] if r["kind"] in base else float("nan")
        lines.append(
            f"| {r['kind']} | {r['codec']} | {r['value_bytes']:,.0f} | {r['wire_bytes']:,.0f} | "
            f"{r['disk_bytes']:,.0f} | {ratio:.2f} | {r['produce_per_s']:,.0f} | "
            f"{r['produce_cpu_us']:,.0f} | {r['consume_per_s']:,.0f} | {r['consume_cpu_us']:,.0f} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for kind in ("tasks", "results"):
        messages = payloads(kind, args.count, args.num_repeats)
        for codec in args.codecs.split(","):
            results.append(await measure(args.bootstrap, args.log_dir, codec, kind, messages))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--log-dir", type=Path, required=True, help="the broker's log.dirs")
    parser.add_argument("--count", type=int, default=4000, help="messages per codec and kind")
    parser.add_argument("--codecs", default=",".join(CODECS))
    parser.add_argument("--num-repeats", type=int, default=4, help="rollouts per task (group)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(table(rows))
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
