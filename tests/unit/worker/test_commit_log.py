"""A fenced worker (its commits refused after a rebalance) says so once per streak."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from test_runner import Model, make_runner

from gymstream.kafka.topics import load_layout
from gymstream.runs.policy import LiveVersions
from gymstream.settings import KafkaSettings, WorkerSettings
from gymstream.worker.loop import _Worker

TP = TopicPartition("t.tasks.a", 0)


class Consumer:
    """Refuses the first ``refusals`` commits, as a broker does for a fenced member."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.committed: list[dict[Any, int]] = []

    async def commit(self, positions: dict[Any, int]) -> None:
        if self.refusals:
            self.refusals -= 1
            raise CommitFailedError("max_poll_interval_ms exceeded")
        self.committed.append(positions)


async def test_refused_commits_are_logged_once_then_their_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kafka, layout = KafkaSettings(), load_layout(prefix="t")
    worker = _Worker(
        kafka,
        layout,
        "a",
        WorkerSettings(),
        LiveVersions(kafka, layout),
        make_runner(Model()),
        None,
    )
    worker.consumer = Consumer(refusals=20)
    for offset in range(22):
        worker.tracker.start(TP, offset)
        worker.tracker.done(TP, offset)
        await worker._commit()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(messages) == 2, messages
    assert messages[0].startswith("offset commit refused (CommitFailedError): this worker no ")
    assert messages[1] == "offset commits succeed again"
    assert worker.consumer.committed[-1] == {TP: 22}
