"""LiveVersions, the one policy-version follower, without a broker: updates and waiters."""

from __future__ import annotations

import asyncio

from gymstream.kafka.topics import load_layout
from gymstream.runs.policy import LiveVersions
from gymstream.settings import KafkaSettings
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import policy_version_key
from gymstream.wire.records import PolicyVersion


def live_versions() -> LiveVersions:
    # never started: nothing connects
    return LiveVersions(KafkaSettings(bootstrap="127.0.0.1:9"), load_layout(prefix="t"))


async def test_live_versions_wake_waiters() -> None:
    live = live_versions()
    waiter = asyncio.create_task(live.wait_for("r1", 3, timeout_s=5))
    live.update("r1", 2)
    live.update("r2", 9)  # another run's version does not satisfy it
    await asyncio.sleep(0)
    assert not waiter.done()
    live.update("r1", 4)
    assert await asyncio.wait_for(waiter, 1) == 4
    assert live.get("r1") == 4
    assert await live.wait_for("r2", 9, timeout_s=1) == 9


async def test_records_on_the_tail_set_and_tombstones_clear_versions() -> None:
    live = live_versions()
    tail = live._tail
    assert tail.prefix == b"control/"
    r1, r2 = policy_version_key("r1"), policy_version_key("r2")
    tail.latest = {
        r1: ENCODER.encode(PolicyVersion(run_id="r1", version=5)),
        r2: b"{undecodable",
    }
    live._apply({r1, r2})
    assert live.versions == {"r1": 5}
    del tail.latest[r1]  # what a tombstone does to the tail
    live._apply({r1})
    assert live.versions == {}
    assert live.get("r1") is None
