"""The commit policies: each keeps its order, and says a streak of refusals once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from gymstream.kafka.offsets import OffsetTracker
from gymstream.stage.commit import FsyncCommit, RecordCommit, WatermarkCommit

TP = TopicPartition("t.tasks.a", 0)


class Consumer:
    """Refuses the first ``refusals`` commits, as a broker does for a fenced member."""

    def __init__(self, refusals: int = 0, events: list[str] | None = None) -> None:
        self.refusals = refusals
        self.committed: list[dict[Any, int] | None] = []
        self.events = events if events is not None else []

    async def commit(self, positions: dict[Any, int] | None = None) -> None:
        if self.refusals:
            self.refusals -= 1
            raise CommitFailedError("max_poll_interval_ms exceeded")
        self.committed.append(positions)
        self.events.append("commit")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_watermark_is_committed_never_past_an_open_offset() -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    commits = WatermarkCommit(Consumer(), tracker, session_timeout_s=10)
    for offset in range(4):
        tracker.start(TP, offset)
    tracker.done(TP, 0)
    tracker.done(TP, 2)  # 1 is still open: 2 and 3 may not be committed
    assert await commits.commit() is not None
    assert commits.consumer.committed == [{TP: 1}]
    assert await commits.commit() is None  # nothing new: no request
    tracker.done(TP, 1)
    await commits.commit(only={TopicPartition("other", 0)})  # not this partition
    assert commits.consumer.committed == [{TP: 1}]
    await commits.commit()
    assert commits.consumer.committed == [{TP: 1}, {TP: 3}]


async def test_refused_commits_are_logged_once_then_their_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    commits = WatermarkCommit(Consumer(refusals=20), tracker, session_timeout_s=10)
    for offset in range(22):
        tracker.start(TP, offset)
        tracker.done(TP, offset)
        await commits.commit()
    messages = warnings(caplog)
    assert len(messages) == 2, messages
    assert messages[0].startswith("offset commit refused (CommitFailedError): this worker no ")
    assert messages[1] == "offset commits succeed again"
    assert commits.consumer.committed[-1] == {TP: 22}
    assert commits.refused.streaks == 1


async def test_a_freeze_is_said_once_with_its_cause_and_the_refusals_not_at_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    commits = WatermarkCommit(Consumer(refusals=3), tracker, session_timeout_s=10)
    # the stall watch's tick, asked before a refusal is logged, finds the freeze
    commits.tick = lambda: commits.stalled(42.0)
    for offset in range(5):
        tracker.start(TP, offset)
        tracker.done(TP, offset)
        await commits.commit()
    messages = warnings(caplog)
    assert len(messages) == 1, messages
    assert messages[0].startswith("this worker was stopped for 42.0 s, past its session timeout")
    assert not commits.fenced.active  # a commit succeeded: the worker is back in its group


async def test_the_sink_commits_only_after_its_rows_are_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    monkeypatch.setattr("gymstream.stage.commit.os.fsync", lambda fd: events.append("fsync"))
    commits = FsyncCommit(Consumer(events=events))
    with (tmp_path / "out.jsonl").open("ab") as handle:
        commits.append(handle, [b'{"a":1}', b'{"a":2}'])
        await commits.commit()
    assert events == ["fsync", "commit"]
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"a":1}\n{"a":2}\n'


async def test_a_record_commit_returns_once_the_record_is_acked() -> None:
    sent: list[tuple[str, bytes, bytes]] = []

    class Producer:
        async def send_and_wait(self, topic: str, value: bytes, *, key: bytes) -> None:
            sent.append((topic, key, value))

    await RecordCommit(Producer(), "t.runs").commit(b"progress/r/c", b"{}")
    assert sent == [("t.runs", b"progress/r/c", b"{}")]
