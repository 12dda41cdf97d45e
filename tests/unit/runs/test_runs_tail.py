"""The runs-topic tail without a broker: which keys it keeps, tombstones, decoding, following."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from gymstream.kafka.topics import TopicLayout, load_layout
from gymstream.runs.tail import Changes, RunsTail
from gymstream.settings import KafkaSettings
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import manifest_key, policy_version_key, progress_key, sink_progress_key
from gymstream.wire.records import PolicyVersion, RunManifest, SinkProgress, StreamProgress

KAFKA = KafkaSettings(bootstrap="127.0.0.1:9")  # never contacted: the consumer is a fake


@dataclass
class Record:
    key: bytes | None
    value: bytes


@dataclass
class FakeConsumer:
    """``getmany`` hands out the queued batches, raising the queued exceptions in turn."""

    batches: list[list[Record] | Exception] = field(default_factory=list)
    polls: int = 0

    async def getmany(self, timeout_ms: int = 0) -> dict[str, list[Record]]:
        self.polls += 1
        if not self.batches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        batch = self.batches.pop(0)
        if isinstance(batch, Exception):
            raise batch
        return {"tp": batch}

    async def stop(self) -> None:
        pass


@pytest.fixture
def layout() -> TopicLayout:
    return load_layout(prefix="t")


def tail_with(layout: TopicLayout, consumer: FakeConsumer, *args: Any, **kwargs: Any) -> RunsTail:
    tail = RunsTail(KAFKA, layout, *args, **kwargs)
    tail._consumer = consumer  # a fake instead of aiokafka's
    return tail


def manifest(run_id: str, created_ms: int) -> RunManifest:
    return RunManifest(run_id=run_id, state="produced", expected={"a": 2}, created_ms=created_ms)


def test_a_tail_keeps_the_keys_and_prefix_it_was_given(layout: TopicLayout) -> None:
    assert RunsTail(KAFKA, layout).wants(b"anything")
    only = RunsTail(KAFKA, layout, [b"r1"], prefix=b"control/")
    assert only.wants(b"r1")
    assert only.wants(b"control/r2")
    assert not only.wants(b"r2")
    assert not only.wants(b"progress/r1/trainer")
    assert not RunsTail(KAFKA, layout, [b"r1"]).wants(b"control/r1")


async def test_poll_keeps_the_latest_value_and_a_tombstone_removes_it(
    layout: TopicLayout,
) -> None:
    consumer = FakeConsumer(
        [
            [Record(b"r1", b"one"), Record(b"r2", b"other"), Record(b"r1", b"two")],
            [Record(None, b"keyless"), Record(b"r1", b"")],
        ]
    )
    tail = tail_with(layout, consumer, [b"r1"])
    assert await tail.poll() == {b"r1"}
    assert tail.latest == {b"r1": b"two"}
    assert await tail.poll() == {b"r1"}
    assert tail.latest == {}


def test_records_are_decoded_and_an_undecodable_one_reads_as_absent(
    layout: TopicLayout,
) -> None:
    tail = RunsTail(KAFKA, layout)
    progress = StreamProgress(
        run_id="r1", consumer="trainer", unit="group", group_size=2, closed_units=5
    )
    tail.latest = {
        manifest_key("r2"): ENCODER.encode(manifest("r2", created_ms=20)),
        manifest_key("r1"): ENCODER.encode(manifest("r1", created_ms=10)),
        manifest_key("broken"): b"{not json",
        policy_version_key("r1"): ENCODER.encode(PolicyVersion(run_id="r1", version=7)),
        progress_key("r1", "trainer"): ENCODER.encode(progress),
    }
    assert [m.run_id for m in tail.manifests()] == ["r1", "r2"]  # oldest first
    assert tail.manifest("r2") == manifest("r2", created_ms=20)
    assert tail.manifest("broken") is None
    assert tail.manifest("absent") is None
    assert tail.policy_version("r1") == PolicyVersion(run_id="r1", version=7)
    assert tail.policy_version("r2") is None
    assert tail.progress("r1", "trainer") == progress
    assert tail.progress("r1", "other") is None


async def test_follow_retries_a_failed_read_when_told_to(layout: TopicLayout) -> None:
    consumer = FakeConsumer([OSError("broker gone"), [Record(b"control/r1", b"v")]])
    tail = tail_with(layout, consumer)
    seen: list[set[bytes]] = []
    read = asyncio.Event()

    def on_change(keys: set[bytes]) -> None:
        seen.append(keys)
        read.set()

    tail.follow(on_change, retry_s=0.0, poll_ms=1)
    await asyncio.wait_for(read.wait(), 5)
    await tail.stop()
    assert seen == [{b"control/r1"}]
    assert tail.latest == {b"control/r1": b"v"}


async def test_follow_hands_a_failed_read_on_and_stops(layout: TopicLayout) -> None:
    error = OSError("broker gone")
    consumer = FakeConsumer([error, [Record(b"r1", b"never read")]])
    tail = tail_with(layout, consumer)
    changes = Changes()
    tail.follow(lambda keys: changes.notify(), on_error=changes.fail, poll_ms=1)
    with pytest.raises(OSError, match="broker gone"):
        await changes.wait_until(lambda: False, timeout_s=5)
    assert consumer.polls == 1
    assert tail.latest == {}
    with pytest.raises(RuntimeError, match="already follows"):
        tail.follow(lambda keys: None)
    await tail.stop()


async def test_changes_wake_a_waiter_once_the_predicate_holds() -> None:
    changes = Changes()
    value = [0]
    waiter = asyncio.create_task(changes.wait_until(lambda: value[0] >= 2, timeout_s=5))
    value[0] = 1
    changes.notify()
    await asyncio.sleep(0)
    assert not waiter.done()
    value[0] = 2
    changes.notify()
    await asyncio.wait_for(waiter, 1)
    with pytest.raises(TimeoutError):
        await changes.wait_until(lambda: False, timeout_s=0.01)


def test_sink_progress_and_stream_positions_are_read_per_run_and_never_as_manifests(
    layout: TopicLayout,
) -> None:
    tail = RunsTail(KAFKA, layout)

    def position(run_id: str, consumer: str) -> StreamProgress:
        return StreamProgress(run_id=run_id, consumer=consumer, unit="group", group_size=2)

    sink = SinkProgress(run_id="r1", written={"a": 3}, failed={"a": 1}, complete=True)
    tail.latest = {
        manifest_key("r1"): ENCODER.encode(manifest("r1", created_ms=10)),
        sink_progress_key("r1"): ENCODER.encode(sink),
        progress_key("r1", "zeta"): ENCODER.encode(position("r1", "zeta")),
        progress_key("r1", "alpha"): ENCODER.encode(position("r1", "alpha")),
        # a run whose id extends r1's: its positions are not r1's
        progress_key("r1/x", "alpha"): ENCODER.encode(position("r1/x", "alpha")),
        progress_key("r2", "alpha"): ENCODER.encode(position("r2", "alpha")),
    }
    assert [m.run_id for m in tail.manifests()] == ["r1"]
    assert tail.sink_progress("r1") == sink
    assert tail.sink_progress("r2") is None
    assert [(p.run_id, p.consumer) for p in tail.stream_positions("r1")] == [
        ("r1", "alpha"),
        ("r1", "zeta"),
    ]
    assert tail.stream_positions("absent") == []
