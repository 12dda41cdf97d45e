"""The sink's per-agent counts (SinkProgress) kept from the ids on disk and each batch's rows."""

from __future__ import annotations

import asyncio
import logging

import pytest
from fixtures.messages import RUN, failure_message, result_message

from gymstream.kafka.topics import load_layout
from gymstream.nemo_gym.outputs.rollout_set import RolloutSet
from gymstream.settings import KafkaSettings
from gymstream.sink.ledger import SinkLedger, SinkReport
from gymstream.sink.progress import ProgressPublisher, SinkCounts
from gymstream.wire.codec import DECODE_SINK_PROGRESS
from gymstream.wire.keys import agent_of, rollout_id, sink_progress_key


def test_agent_of_inverts_rollout_id() -> None:
    assert agent_of("r/1", rollout_id("r/1", "my_agent", 12, 3)) == "my_agent"


def test_counts_start_from_the_files_and_follow_every_batch() -> None:
    on_disk_written = RolloutSet([("a", 0, 0), ("b", 0, 0)])
    on_disk_failed = RolloutSet([("a", 1, 0)])
    ledger = SinkLedger(SinkReport(run_id=RUN), on_disk_written, on_disk_failed)
    counts = SinkCounts(ledger)
    assert (counts.record().written, counts.record().failed) == ({"a": 1, "b": 1}, {"a": 1})

    rows = ledger.take(
        [
            result_message(2, agent="a"),
            failure_message(3, agent="b"),
            result_message(0, agent="a"),  # a duplicate: not counted
            result_message(1, agent="a"),  # supersedes the failure on disk
            result_message(9, agent="a", run="other"),  # another run's
        ]
    )
    counts.superseded(rows.superseded)
    record = counts.record()
    assert record.run_id == RUN
    assert record.written == {"a": 3, "b": 1}
    assert record.failed == {"b": 1}
    assert record.duplicates == 1
    assert not record.complete
    # the counts always agree with the ledger's sets
    assert sum(record.written.values()) == len(ledger.written)
    assert sum(record.failed.values()) == len(ledger.failed)


def test_a_failure_superseded_in_the_same_batch_moves_to_written() -> None:
    ledger = SinkLedger(SinkReport(run_id=RUN))
    counts = SinkCounts(ledger)
    rows = ledger.take([failure_message(0), result_message(0)])
    counts.superseded(rows.superseded)
    assert (counts.record().written, counts.record().failed) == ({"a": 1}, {})


class FakeProducer:
    """``send`` hands out futures the test settles; ``sent`` keeps what was handed over."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.futures: list[asyncio.Future[object]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[object]:
        self.sent.append((topic, value, key))
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def test_a_record_on_its_way_never_holds_the_sink_up_nor_piles_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = SinkLedger(SinkReport(run_id=RUN))
    publisher = ProgressPublisher(
        KafkaSettings(bootstrap="127.0.0.1:9"), load_layout(prefix="t"), SinkCounts(ledger), 0.0
    )
    fake = FakeProducer()
    publisher._producer = fake  # type: ignore[assignment]  # a fake instead of aiokafka's
    await publisher.start()

    await publisher.maybe_publish()  # handed over, not awaited
    ledger.take([result_message(0)])
    await publisher.maybe_publish()  # the first is still on its way: nothing more is sent
    assert len(fake.sent) == 1
    topic, value, key = fake.sent[0]
    assert (topic, key) == ("t.runs", sink_progress_key(RUN))
    assert DECODE_SINK_PROGRESS.decode(value).written == {}

    fake.futures[0].set_exception(OSError("broker gone"))
    with caplog.at_level(logging.WARNING, logger="gymstream.sink.progress"):
        await publisher.maybe_publish()  # the failure is logged, newer counts go out
    assert "could not publish the sink's progress to t.runs: broker gone" in caplog.text
    assert DECODE_SINK_PROGRESS.decode(fake.sent[1][1]).written == {"a": 1}

    # the last counts are awaited, even behind one still on its way
    last = asyncio.create_task(publisher.publish(wait=True))
    await asyncio.sleep(0)
    assert len(fake.sent) == 3
    assert not last.done()
    fake.futures[2].set_result(None)
    await asyncio.wait_for(last, 5)
    await publisher.stop()
