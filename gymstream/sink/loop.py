"""Sink: results and failures topics -> NeMo Gym JSONL files, effectively once.

For each batch: append the new rows, flush and fsync both files, THEN commit the consumed
offsets. A crash between the two repeats some results on restart; the set of rollouts already
in the files (rebuilt on start, after cutting a torn last line) drops them, so the output never
loses or doubles a row. A sink whose files hold no row of the run rebuilds them from the start
of the topics (``rebuild.FromTheStart``). The run is complete when its manifest says
``produced`` and every expected rollout is written or failed; the sink then stops by itself
(unless ``follow``).
This module is the Kafka and file side (a handler on ``stage.runtime.Stage``); which rows a
batch adds, what is a duplicate and when the run is complete is ``ledger.SinkLedger`` (pure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from aiokafka import ConsumerRecord, TopicPartition

from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.outputs.aggregate import write_metrics
from gymstream.nemo_gym.outputs.files import (
    OutputPaths,
    move_to_history,
    read_rollouts,
    read_run_file,
    repair_torn_tail,
)
from gymstream.observe.metrics import Metrics, SinkMetrics
from gymstream.runs.tail import RunsTail
from gymstream.settings import KafkaSettings
from gymstream.sink.ledger import SinkLedger, SinkReport
from gymstream.sink.progress import ProgressPublisher, SinkCounts
from gymstream.sink.rebuild import FromTheStart
from gymstream.stage.commit import FsyncCommit
from gymstream.stage.runtime import Stage
from gymstream.stage.watch import StageWatch
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
    ledger = _resume(output, run_id)
    sink = _Sink(
        layout, output, run_id, ledger, follow, batch_records=batch_records, on_progress=on_progress
    )
    async with Stage(kafka, who="sink", stop=stop, drain=drain) as stage:
        await sink.start(stage, progress_interval_s, metrics)
        await sink.run(stage)
    write_metrics(output.output, output.metrics)
    ledger.report.elapsed_s = time.perf_counter() - started
    return ledger.report


class _Sink:
    """The sink's handler on ``stage.runtime.Stage``: its files, runs tail, consumer, progress
    publisher and watches; commits through ``stage.commit.FsyncCommit`` (rows on disk first)."""

    def __init__(
        self,
        layout: TopicLayout,
        output: OutputPaths,
        run_id: str,
        ledger: SinkLedger,
        follow: bool,
        *,
        batch_records: int,
        on_progress: Callable[[SinkReport], None] | None,
    ) -> None:
        self.layout = layout
        self.output = output
        self.run_id = run_id
        self.ledger = ledger
        self.report = ledger.report
        self.counts = SinkCounts(ledger)  # published for `gymstream status` (sink/progress.py)
        self.follow = follow
        self.batch_records = batch_records
        self.on_progress = on_progress
        self.consumer: Any = None
        self.record: SinkMetrics | None = None
        self.watch: StageWatch | None = None

    async def start(
        self, stage: Stage, progress_interval_s: float, metrics: Metrics | None
    ) -> None:
        """Open the files (a bad path fails before anything connects), then start the runs
        tail, the consumer, the progress publisher and the broker watch, in that order."""
        self.out_handle = self.output.output.open("ab")
        self.fail_handle = self.output.failures.open("ab")
        stage.on_exit(self._close_files)
        kafka, layout = stage.kafka, self.layout
        self.runs = await stage.start(RunsTail(kafka, layout, [manifest_key(self.run_id)]))
        if metrics is not None:
            self._watch(metrics)
        # no row of the run in the files (a new or emptied output): read what the topics
        # retain from the start, whatever the group committed before
        rebuild = self.report.resumed_rows == 0
        self.consumer = await stage.consumer(
            group_id=layout.sink_group(self.run_id),
            topics=[layout.results, layout.failures],
            listener=lambda consumer: FromTheStart(consumer, rebuild=rebuild),
            max_poll_records=self.batch_records,
        )
        self.commits = FsyncCommit(self.consumer)
        publisher = ProgressPublisher(kafka, layout, self.counts, progress_interval_s)
        self.publisher = await stage.start(publisher)
        stage.watch_broker(self.consumer)
        await self.publisher.publish()  # what the files hold on start (status sees it at once)

    def _watch(self, metrics: Metrics) -> None:
        """The sink's counters, lag and readiness (only with a metrics port)."""
        self.record = metrics.sink()
        self.record.baseline(self.report.written, self.report.failed, self.report.duplicates)
        self.watch = StageWatch(
            metrics,
            "sink",
            lambda: self.consumer,
            unassigned="no partition of the results and failures topics assigned yet",
        )
        metrics.watch_sink(self.watch.lag)

    async def run(self, stage: Stage) -> None:
        """Poll, write, fsync, commit until the run is complete, ``stop`` or a drained poll."""
        manifest = None
        while not stage.stopping:
            if manifest_key(self.run_id) in await self.runs.poll(timeout_ms=0):
                manifest = self.runs.manifest(self.run_id) or manifest
            if self.ledger.check_complete(manifest, follow=self.follow):
                break
            batches = await self.consumer.getmany(timeout_ms=200, max_records=self.batch_records)
            if batches:
                await self._write(batches)
                continue
            if self.watch is not None:
                await self.watch.measure_lag()
            if stage.draining:
                break  # caught up with what was published
        if self.watch is not None:
            await self.watch.measure_lag(force=True)
        await self.publisher.publish(wait=True)

    async def _write(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        rows = self.ledger.take(_decode(batches, self.layout.results))
        if rows.output:
            self.commits.append(self.out_handle, rows.output)
        if rows.failures:
            self.commits.append(self.fail_handle, rows.failures)
        if rows.superseded:
            # a success wins: the rollout's failure row moves to the history file
            self.fail_handle.close()
            move_to_history(self.output, self.run_id, rows.superseded)
            self.fail_handle = self.output.failures.open("ab")
            self.counts.superseded(rows.superseded)
        seconds = await self.commits.commit()  # only now: the rows above are on disk
        if self.record is not None and self.watch is not None:
            self.record.commit.observe(seconds)
            self.record.progress(self.report.written, self.report.failed, self.report.duplicates)
            await self.watch.measure_lag()
        await self.publisher.maybe_publish()
        if self.on_progress is not None:
            self.on_progress(self.report)

    async def _close_files(self) -> None:
        self.out_handle.close()
        self.fail_handle.close()
