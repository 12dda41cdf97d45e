"""Sink: results and failures topics -> NeMo Gym JSONL files, effectively once.

For each batch: append the new rows, flush and fsync both files, THEN commit the consumed
offsets. A crash between the two repeats some results on restart; the set of rollouts already
in the files (rebuilt on start, after cutting a torn last line) drops them, so the output never
loses or doubles a row. A sink whose files hold no row of the run rebuilds them from the start
of the topics (``rebuild.FromTheStart``). The run is complete when its manifest says
``produced`` and every expected rollout is written or failed; the sink then stops by itself
(unless ``follow``).
This module is the Kafka and file side; which rows a batch adds, what is a duplicate and when
the run is complete is ``ledger.SinkLedger`` (pure).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import msgspec
from aiokafka import ConsumerRecord, TopicPartition

from gymstream.kafka.clients import build_consumer
from gymstream.kafka.topics import TopicLayout
from gymstream.kafka.watch import BrokerWatch, watch_consumer
from gymstream.nemo_gym.outputs.aggregate import write_metrics
from gymstream.nemo_gym.outputs.files import (
    OutputPaths,
    move_to_history,
    read_rollouts,
    read_run_file,
    repair_torn_tail,
)
from gymstream.observe.lag import LagMeter
from gymstream.observe.metrics import Metrics, SinkMetrics
from gymstream.runs.tail import RunsTail
from gymstream.settings import KafkaSettings
from gymstream.sink.ledger import SinkLedger, SinkReport
from gymstream.sink.progress import ProgressPublisher, SinkCounts
from gymstream.sink.rebuild import FromTheStart
from gymstream.wire.codec import DECODE_FAILURE, DECODE_RESULT
from gymstream.wire.keys import manifest_key
from gymstream.wire.messages import FailureMessage, ResultMessage

__all__ = ["SinkReport", "run_sink"]

log = logging.getLogger("gymstream.sink.loop")


def _resume(output: OutputPaths, run_id: str) -> SinkLedger:
    """The ledger of what the files already hold, after cutting a torn last line."""
    report = SinkReport(run_id=run_id)
    report.torn_bytes = repair_torn_tail(output.output) + repair_torn_tail(output.failures)
    if report.torn_bytes:
        log.warning("cut a torn last line (%d bytes) left by a crash", report.torn_bytes)
    written = read_rollouts(output.output)
    failed = read_rollouts(output.failures)
    # a retried rollout counts only with an outcome of its new attempt (see resume.py)
    retried: dict[str, int] = dict((read_run_file(output) or {}).get("retried", {}))
    ledger = SinkLedger(report, written, failed, retried)
    if ledger.superseded_on_disk:
        moved = move_to_history(output, run_id, ledger.superseded_on_disk)
        log.warning(
            "moved %d failures of rollouts that succeeded to %s", moved, output.failures_history
        )
    return ledger


def _decode(
    batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], results_topic: str
) -> Iterator[ResultMessage | FailureMessage]:
    """The batch's results and failures in the order read; undecodable ones logged, skipped."""
    for tp, messages in batches.items():
        decoder = DECODE_RESULT if tp.topic == results_topic else DECODE_FAILURE
        for message in messages:
            if not message.value:
                continue
            try:
                yield decoder.decode(message.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning(
                    "skipping undecodable message at %s/%d/%d: %s",
                    tp.topic,
                    tp.partition,
                    message.offset,
                    exc,
                )


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
    metrics: Metrics | None = None,
    drain: asyncio.Event | None = None,
    progress_interval_s: float = 1.0,
) -> SinkReport:
    """Write the run's results to ``output`` until the run is complete (or ``stop``).

    ``metrics`` (None: off): rows and failures written, duplicates dropped, commit latency, the
    lag per partition (measured after a commit, at most every second, and at the end); ready
    for ``/healthz`` while it has partitions assigned. ``drain`` (a graceful stop, once nothing
    more is being published): when set, the sink stops at its first poll that brings nothing,
    having written and committed what arrived before.
    """
    started = time.perf_counter()
    stop = stop or asyncio.Event()
    ledger = _resume(output, run_id)
    report = ledger.report
    counts = SinkCounts(ledger)  # published for `gymstream status` (sink/progress.py)
    publisher = ProgressPublisher(kafka, layout, counts, progress_interval_s)
    runs = RunsTail(kafka, layout, [manifest_key(run_id)])
    consumer = build_consumer(
        kafka, group_id=layout.sink_group(run_id), max_poll_records=batch_records
    )
    # no row of the run in the files (a new or emptied output): read what the topics retain
    # from the start, whatever the group committed before
    rebuild = FromTheStart(consumer, rebuild=report.resumed_rows == 0)
    consumer.subscribe([layout.results, layout.failures], listener=rebuild)
    watch = None if metrics is None else _SinkWatch(metrics, consumer, report)
    out_handle = output.output.open("ab")
    fail_handle = output.failures.open("ab")
    broker_watch: BrokerWatch | None = None
    try:
        # started inside the try: a failed start (no broker) still closes both clients
        await runs.start()
        await consumer.start()
        broker_watch = watch_consumer(
            consumer, who="sink", bootstrap=kafka.bootstrap, interval_s=kafka.watch_interval_s
        )
        await publisher.start()
        await publisher.publish()  # what the files hold on start (status sees the sink at once)
        manifest = None
        while not stop.is_set():
            if manifest_key(run_id) in await runs.poll(timeout_ms=0):
                manifest = runs.manifest(run_id) or manifest
            if ledger.check_complete(manifest, follow=follow):
                break
            batches = await consumer.getmany(timeout_ms=200, max_records=batch_records)
            if not batches:
                if watch is not None:
                    await watch.measure_lag()
                if drain is not None and drain.is_set():
                    break  # caught up with what was published
                continue
            rows = ledger.take(_decode(batches, layout.results))
            if rows.output:
                out_handle.write(b"\n".join(rows.output) + b"\n")
                _fsync(out_handle)
            if rows.failures:
                fail_handle.write(b"\n".join(rows.failures) + b"\n")
                _fsync(fail_handle)
            if rows.superseded:
                # a success wins: the rollout's failure row moves to the history file
                fail_handle.close()
                move_to_history(output, run_id, rows.superseded)
                fail_handle = output.failures.open("ab")
                counts.superseded(rows.superseded)
            began = time.perf_counter()
            await consumer.commit()  # only now: the rows above are on disk
            if watch is not None:
                watch.committed(time.perf_counter() - began)
                await watch.measure_lag()
            await publisher.maybe_publish()
            if on_progress is not None:
                on_progress(report)
        if watch is not None:
            await watch.measure_lag(force=True)
        await publisher.publish(wait=True)
    finally:
        if broker_watch is not None:
            await broker_watch.stop()
        out_handle.close()
        fail_handle.close()
        await publisher.stop()
        await consumer.stop()
        await runs.stop()
    write_metrics(output.output, output.metrics)
    report.elapsed_s = time.perf_counter() - started
    return report


class _SinkWatch:
    """The sink's metrics and readiness (only with a metrics port)."""

    def __init__(self, metrics: Metrics, consumer: Any, report: SinkReport) -> None:
        self.record: SinkMetrics = metrics.sink()
        self.record.baseline(report.written, report.failed, report.duplicates)
        self.consumer = consumer
        self.report = report
        self.meter = LagMeter()
        metrics.watch_sink(lambda: self.meter.lag)
        metrics.readiness.add("sink", self.not_ready)

    def not_ready(self) -> str | None:
        if not self.consumer.assignment():
            return "no partition of the results and failures topics assigned yet"
        return None

    def committed(self, seconds: float) -> None:
        self.record.commit.observe(seconds)
        report = self.report
        self.record.progress(report.written, report.failed, report.duplicates)

    async def measure_lag(self, *, force: bool = False) -> None:
        await self.meter.measure(self.consumer, force=force)
