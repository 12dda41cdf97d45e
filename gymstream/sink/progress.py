"""The sink's counts per agent, published to the runs topic for `gymstream status`.

``SinkCounts`` (pure) keeps, per agent, the rollouts of the run in the output and failures
files: counted once from the ids found on start, then kept by what each batch adds (a result
that supersedes a failure moves one count from failed to written). ``ProgressPublisher`` sends
a ``SinkProgress`` record under ``sink/<run id>`` on start, after a commit (at most once per
``interval_s``), and once more when the sink's loop ends (that one awaited). The record is for
observers only: a send that fails is logged and the next commit sends newer counts; it never
stops or holds up the sink.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from gymstream.kafka.clients import build_producer
from gymstream.kafka.topics import TopicLayout
from gymstream.settings import KafkaSettings
from gymstream.sink.ledger import SinkLedger
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import agent_of, sink_progress_key
from gymstream.wire.records import SinkProgress

__all__ = ["ProgressPublisher", "SinkCounts"]

log = logging.getLogger("gymstream.sink.progress")


class SinkCounts:
    """Per agent, the run's rollouts in the files: what a ``SinkProgress`` record says."""

    def __init__(self, ledger: SinkLedger) -> None:
        self._ledger = ledger
        self._written0 = Counter(agent for agent, _, _ in ledger.written)
        self._failed0 = Counter(agent for agent, _, _ in ledger.failed)
        self._superseded: Counter[str] = Counter()

    def superseded(self, rollout_ids: Iterable[str]) -> None:
        """These rollouts' failures were replaced by results (``Rows.superseded``)."""
        run_id = self._ledger.report.run_id
        self._superseded.update(agent_of(run_id, rid) for rid in rollout_ids)

    def record(self) -> SinkProgress:
        report = self._ledger.report
        written = self._written0 + report.written
        failed = self._failed0 + report.failed
        failed.subtract(self._superseded)
        return SinkProgress(
            run_id=report.run_id,
            written=dict(sorted(written.items())),
            failed={a: n for a, n in sorted(failed.items()) if n > 0},
            duplicates=report.duplicates,
            models=dict(sorted(report.models.items())),
            complete=report.complete,
            updated_ms=int(time.time() * 1000),
        )


class ProgressPublisher:
    """Sends the sink's ``SinkProgress`` to the runs topic, at most once per ``interval_s``.

    A record on its way does not hold the sink up: ``maybe_publish`` hands the record to the
    producer and returns; the outcome of a send is looked at before the next one (a failure is
    logged; while one is still unacknowledged no other is sent, so a broker outage never piles
    records up). ``publish(wait=True)`` (the last counts) returns once Kafka has them.
    """

    def __init__(
        self, kafka: KafkaSettings, layout: TopicLayout, counts: SinkCounts, interval_s: float
    ) -> None:
        self._producer: AIOKafkaProducer = build_producer(kafka)
        self._topic = layout.runs
        self._counts = counts
        self._interval_s = interval_s
        self._last = float("-inf")
        self._started = False
        self._sent: asyncio.Future[Any] | None = None

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def maybe_publish(self) -> None:
        """Publish unless the last record is younger than ``interval_s``."""
        if time.monotonic() - self._last >= self._interval_s:
            await self.publish()

    async def publish(self, *, wait: bool = False) -> None:
        if not self._started or not self._settled(wait=wait):
            return
        record = self._counts.record()
        try:
            self._sent = await self._producer.send(
                self._topic, ENCODER.encode(record), key=sink_progress_key(record.run_id)
            )
            self._last = time.monotonic()
            if wait:
                await self._sent
        except Exception as exc:  # boundary: observers' record only, the sink goes on
            log.warning("could not publish the sink's progress to %s: %s", self._topic, exc)

    def _settled(self, *, wait: bool) -> bool:
        """Whether the last send is done (its failure logged); with ``wait`` always go on."""
        sent, self._sent = self._sent, None
        if sent is None:
            return True
        if not sent.done():
            self._sent = sent
            return wait
        if not sent.cancelled() and sent.exception() is not None:
            log.warning(
                "could not publish the sink's progress to %s: %s", self._topic, sent.exception()
            )
        return True

    async def stop(self) -> None:
        """Close the producer (the caller publishes the last counts first)."""
        self._started = False
        await self._producer.stop()
