"""Sink: results and failures topics -> NeMo Gym JSONL files, effectively once.

For each batch: append the new rows, flush and fsync both files, THEN commit the consumed
offsets. A crash between the two repeats some results on restart; the set of rollout ids already
in the files (rebuilt on start, after cutting a torn last line) drops them, so the output never
loses or doubles a row. The run is complete when its manifest says ``produced`` and every
expected rollout is written or failed; the sink then stops by itself (unless ``follow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import msgspec

from gymstream.kafka.clients import build_consumer
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo.output_row import failure_row
from gymstream.nemo.outputs import (
    OutputPaths,
    aggregate_metrics,
    read_done_ids,
    read_run_file,
    repair_torn_tail,
)
from gymstream.runs.control import RunsTail
from gymstream.settings import KafkaSettings
from gymstream.wire.codec import DECODE_FAILURE, DECODE_MANIFEST, DECODE_RESULT, ENCODER
from gymstream.wire.records import RunManifest

__all__ = ["SinkReport", "run_sink"]

log = logging.getLogger("gymstream.sink.loop")


@dataclass
class SinkReport:
    """What the sink saw; ``complete`` when every expected rollout is accounted for."""

    run_id: str
    written: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failure_classes: Counter[str] = field(default_factory=Counter)
    reward_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    duplicates: int = 0
    resumed_rows: int = 0
    accounted: int = 0
    torn_bytes: int = 0
    expected: dict[str, int] | None = None
    complete: bool = False
    elapsed_s: float = 0.0

    @property
    def expected_total(self) -> int | None:
        return None if self.expected is None else sum(self.expected.values())


class _ManifestWatcher:
    """The run's manifest, read from the compacted runs topic (``control.RunsTail``)."""

    def __init__(self, kafka: KafkaSettings, layout: TopicLayout, run_id: str) -> None:
        self.key = run_id.encode("utf-8")
        self.tail = RunsTail(kafka, layout, [self.key])
        self.manifest: RunManifest | None = None

    async def start(self) -> None:
        await self.tail.start()

    async def poll(self) -> RunManifest | None:
        if self.key in await self.tail.poll(timeout_ms=0):
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                self.manifest = DECODE_MANIFEST.decode(self.tail.latest[self.key])
        return self.manifest

    async def stop(self) -> None:
        await self.tail.stop()


def _fsync(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


async def run_sink(
    kafka: KafkaSettings,
    layout: TopicLayout,
    output: OutputPaths,
    run_id: str,
    *,
    stop: asyncio.Event | None = None,
    follow: bool = False,
    on_progress: Callable[[SinkReport], None] | None = None,
    batch_records: int = 5000,
) -> SinkReport:
    """Write the run's results to ``output`` until the run is complete (or ``stop``)."""
    started = time.perf_counter()
    stop = stop or asyncio.Event()
    report = SinkReport(run_id=run_id)
    report.torn_bytes = repair_torn_tail(output.output) + repair_torn_tail(output.failures)
    if report.torn_bytes:
        log.warning("cut a torn last line (%d bytes) left by a crash", report.torn_bytes)
    written_ids = read_done_ids(output.output, run_id)
    failed_ids = read_done_ids(output.failures, run_id) - written_ids
    # a retried rollout counts only with an outcome of its new attempt (see resume.py)
    retried: dict[str, int] = dict((read_run_file(output) or {}).get("retried", {}))
    report.resumed_rows = len(written_ids) + len(failed_ids)
    report.accounted = report.resumed_rows

    watcher = _ManifestWatcher(kafka, layout, run_id)
    consumer = build_consumer(
        kafka,
        layout.results,
        layout.failures,
        group_id=layout.sink_group(run_id),
        max_poll_records=batch_records,
    )
    out_handle = output.output.open("ab")
    fail_handle = output.failures.open("ab")
    try:
        # started inside the try: a failed start (no broker) still closes both clients
        await watcher.start()
        await consumer.start()
        while not stop.is_set():
            manifest = await watcher.poll()
            if manifest is not None and manifest.state == "produced":
                report.expected = dict(manifest.expected)
                if report.accounted >= (report.expected_total or 0) and not follow:
                    report.complete = True
                    break
            batches = await consumer.getmany(timeout_ms=200, max_records=batch_records)
            if not batches:
                continue
            out_buf: list[bytes] = []
            fail_buf: list[bytes] = []
            for tp, messages in batches.items():
                is_result = tp.topic == layout.results
                for message in messages:
                    if not message.value:
                        continue
                    try:
                        if is_result:
                            result = DECODE_RESULT.decode(message.value)
                        else:
                            failure = DECODE_FAILURE.decode(message.value)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        log.warning(
                            "skipping undecodable message at %s/%d/%d: %s",
                            tp.topic,
                            tp.partition,
                            message.offset,
                            exc,
                        )
                        continue
                    if is_result:
                        if result.run_id != run_id:
                            continue
                        if result.rollout_id in written_ids:
                            report.duplicates += 1
                            continue
                        written_ids.add(result.rollout_id)
                        failed_ids.discard(result.rollout_id)
                        out_buf.append(bytes(result.output))
                        report.written[result.agent] += 1
                        report.reward_sum[result.agent] += result.reward
                    else:
                        if failure.run_id != run_id:
                            continue
                        rid = failure.rollout_id
                        if failure.attempt < retried.get(rid, 0):
                            continue  # an earlier attempt's failure; a new attempt is coming
                        if rid in written_ids or rid in failed_ids:
                            report.duplicates += 1
                            continue
                        failed_ids.add(rid)
                        fail_buf.append(ENCODER.encode(failure_row(failure)))
                        report.failed[failure.agent] += 1
                        report.failure_classes[failure.failure_class] += 1
            if out_buf:
                out_handle.write(b"\n".join(out_buf) + b"\n")
                _fsync(out_handle)
            if fail_buf:
                fail_handle.write(b"\n".join(fail_buf) + b"\n")
                _fsync(fail_handle)
            await consumer.commit()  # only now: the rows above are on disk
            report.accounted = len(written_ids) + len(failed_ids)
            if on_progress is not None:
                on_progress(report)
    finally:
        out_handle.close()
        fail_handle.close()
        await consumer.stop()
        await watcher.stop()
    output.metrics.write_bytes(
        msgspec.json.format(ENCODER.encode(aggregate_metrics(output.output)), indent=2)
    )
    report.elapsed_s = time.perf_counter() - started
    return report
