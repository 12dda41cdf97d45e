"""A trainer stream's position record without a broker: building it, writing it when changed."""

from __future__ import annotations

import pytest

from gymstream.errors import ConfigError
from gymstream.trainer.grouping import ClosedSet, UnitKey
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.position import (
    PositionWriter,
    check_resumable,
    load_position,
    make_position,
)
from gymstream.wire.records import StreamProgress

OPTIONS = StreamOptions(run_id="r1", group_size=4, consumer="c")


def position(closed_units: int = 0) -> StreamProgress:
    return StreamProgress(
        run_id="r1", consumer="c", unit="group", group_size=4, closed_units=closed_units
    )


def test_the_position_splits_watermarks_by_topic() -> None:
    closed = ClosedSet()
    closed.add(UnitKey("a", 0))
    closed.add(UnitKey("a", 1))
    made = make_position(
        OPTIONS,
        watermarks={("res", 0): 5, ("res", 3): 7, ("fail", 1): 2},
        closed=closed,
        results_topic="res",
        failures_topic="fail",
        acknowledged_units=1,
        policy_version=4,
    )
    assert made.results == {0: 5, 3: 7}
    assert made.failures == {1: 2}
    assert (made.run_id, made.consumer, made.unit, made.group_size) == ("r1", "c", "group", 4)
    assert (made.closed_units, made.acknowledged_units, made.policy_version) == (2, 1, 4)
    assert UnitKey("a", 1) in ClosedSet.from_wire(made.closed)


def test_a_position_of_other_options_is_refused() -> None:
    check_resumable(position(), OPTIONS)
    check_resumable(position(), OPTIONS.model_copy(update={"consumer": "other"}))
    with pytest.raises(ConfigError, match="this stream asks for run r1, unit group, group size 2"):
        check_resumable(position(), OPTIONS.model_copy(update={"group_size": 2}))
    with pytest.raises(ConfigError, match="is for run r1, unit group, group size 4"):
        check_resumable(position(), StreamOptions(run_id="r2", group_size=4))


async def test_the_writer_writes_a_position_only_when_it_changed() -> None:
    sent: list[bytes] = []

    async def send(value: bytes) -> None:
        sent.append(value)

    writer = PositionWriter(send)
    writer.restored(position(1))
    assert not await writer.save(position(1))  # what the stream resumed from
    assert await writer.save(position(2))
    assert not await writer.save(position(2))
    assert len(sent) == 1
    written = load_position(sent[0])
    assert written.closed_units == 2
    assert written.updated_ms > 0  # stamped when written


async def test_a_failed_write_is_tried_again_at_the_next_save() -> None:
    calls: list[bytes] = []

    async def send(value: bytes) -> None:
        calls.append(value)
        if len(calls) == 1:
            raise OSError("broker gone")

    writer = PositionWriter(send)
    with pytest.raises(OSError, match="broker gone"):
        await writer.save(position(1))
    assert await writer.save(position(1))
    assert len(calls) == 2


def test_a_position_with_sizes_from_the_manifest_says_so_when_refused() -> None:
    with pytest.raises(ConfigError, match=r"group size 4; .* group sizes from the manifest"):
        check_resumable(position(), StreamOptions(run_id="r1", consumer="c"))
