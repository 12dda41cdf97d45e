"""The Pacer without a broker: back-pressure from the trainer's progress."""

from __future__ import annotations

import asyncio

import pytest

from gymstream.errors import ConfigError
from gymstream.runs.pacing import Pacer


async def test_pacer_blocks_until_the_trainer_catches_up() -> None:
    pacer = Pacer(max_ahead=2)
    assert await pacer.wait_for_room(1, timeout_s=1) == 0
    assert not pacer.has_room(2)
    waiter = asyncio.create_task(pacer.wait_for_room(4, timeout_s=5))
    pacer.update(1)  # 4 - 1 = 3: still too far ahead
    await asyncio.sleep(0)
    assert not waiter.done()
    pacer.update(0)  # progress never goes back
    assert pacer.consumed == 1
    pacer.update(3)
    assert await asyncio.wait_for(waiter, 1) == 3
    with pytest.raises(TimeoutError):
        await pacer.wait_for_room(10, timeout_s=0.01)


async def test_a_pacer_whose_reader_failed_raises_to_its_waiters() -> None:
    pacer = Pacer(max_ahead=1)
    waiter = asyncio.create_task(pacer.wait_for_room(5, timeout_s=5))
    await asyncio.sleep(0)
    pacer.changes.fail(OSError("runs topic unreadable"))
    with pytest.raises(OSError, match="runs topic unreadable"):
        await asyncio.wait_for(waiter, 1)


def test_a_pacer_needs_room_for_one_unit() -> None:
    with pytest.raises(ConfigError, match="max_ahead must be at least 1, not 0"):
        Pacer(max_ahead=0)
