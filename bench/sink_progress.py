"""What the sink's SinkProgress records (for `gymstream status`) cost the sink.

``python -m bench.sink_progress --bootstrap B [--count 20000] [--rounds 3]`` publishes
``count`` result messages of one run (a small NeMo Gym-shaped output row each) and its
``produced`` manifest to fresh topics, then runs the sink (``sink.loop.run_sink``, in this
process) over them ``rounds`` times per setting, alternating, each into a new output file (so
each reads the whole run from the start): ``after every commit`` (interval 0: the worst
case), ``interval 1 s`` (the default: a record after a commit at most once a second) and
``start/end only`` (an interval longer than the run). Prints the median seconds (with the
spread) and rows/s per setting, and how many records the runs topic got per sink run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import msgspec

from gymstream.kafka.clients import build_consumer, build_producer, topic_partitions
from gymstream.kafka.topics import apply_topics, load_layout
from gymstream.nemo_gym.outputs.files import OutputPaths
from gymstream.produce.producer import publish_manifest
from gymstream.settings import KafkaSettings
from gymstream.sink.loop import run_sink
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import group_key, rollout_id
from gymstream.wire.messages import ResultMessage
from gymstream.wire.records import RunManifest

AGENT = "bench_agent"
SETTINGS = {"after every commit": 0.0, "interval 1 s (default)": 1.0, "start/end only": 1e9}


async def publish_run(kafka: KafkaSettings, prefix: str, run_id: str, count: int) -> None:
    layout = load_layout(prefix=prefix)
    await apply_topics(kafka.client_options(), layout, [])
    producer = build_producer(kafka)
    await producer.start()
    try:
        pending = []
        for i in range(count):
            row = {
                "responses_create_params": {"input": f"q{i}"},
                "reward": 1.0,
                "_ng_task_index": i,
                "_ng_rollout_index": 0,
                "agent_ref": {"type": "responses_api_agents", "name": AGENT},
            }
            message = ResultMessage(
                run_id=run_id,
                rollout_id=rollout_id(run_id, AGENT, i, 0),
                agent=AGENT,
                task_index=i,
                rollout_index=0,
                output=msgspec.Raw(ENCODER.encode(row)),
                reward=1.0,
            )
            key = group_key(run_id, AGENT, i)
            pending.append(await producer.send(layout.results, ENCODER.encode(message), key=key))
            if len(pending) >= 4096:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        manifest = RunManifest(run_id=run_id, state="produced", expected={AGENT: count})
        await publish_manifest(producer, layout, manifest)
    finally:
        await producer.stop()


async def runs_records(kafka: KafkaSettings, topic: str) -> int:
    consumer = build_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def run(args: argparse.Namespace) -> None:
    kafka = KafkaSettings(bootstrap=args.bootstrap)
    prefix = f"bsp{uuid.uuid4().hex[:8]}"
    layout = load_layout(prefix=prefix)
    await publish_run(kafka, prefix, "bench", args.count)
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    records: dict[str, list[int]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for name, interval_s in SETTINGS.items():
                before = await runs_records(kafka, layout.runs)
                paths = OutputPaths(Path(tmp) / f"{i}-{interval_s}.jsonl")
                started = time.perf_counter()
                report = await run_sink(
                    kafka, layout, paths, "bench", progress_interval_s=interval_s
                )
                times[name].append(time.perf_counter() - started)
                if not report.complete or report.accounted != args.count:
                    raise RuntimeError(f"the sink stopped early: {report}")
                records[name].append(await runs_records(kafka, layout.runs) - before)
    print(f"sink over {args.count} results, {args.rounds} rounds per setting (median)")
    print("| setting | seconds | rows/s | SinkProgress records per run |")
    print("|---|---|---|---|")
    for name in SETTINGS:
        median = statistics.median(times[name])
        spread = f"{min(times[name]):.2f}-{max(times[name]):.2f}"
        print(
            f"| {name} | {median:.2f} ({spread}) | {args.count / median:,.0f} | "
            f"{statistics.median(records[name]):.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
