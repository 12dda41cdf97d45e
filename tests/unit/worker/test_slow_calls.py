"""SlowCalls: slow model calls are said once per streak, with their count in the last minute."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gymstream.worker.slow import SlowCalls, TimedModel


def test_a_streak_of_slow_calls_is_said_once_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    slow = SlowCalls(30.0, 3, url="http://m/v1", clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="gymstream.worker.slow")
    for seconds in [31, 1, 45, 2]:  # two slow ones: under the count
        slow.record(seconds)
        now[0] += 1
    assert caplog.records == []
    for _ in range(10):  # a streak: the third within the minute starts it, once
        slow.record(40)
        now[0] += 1
    assert len(caplog.records) == 1
    assert (
        caplog.records[0]
        .getMessage()
        .startswith("model calls slower than 30 s: 3 in the last minute (http://m/v1)")
    )
    now[0] += 61
    slow.record(1)  # a minute without a slow call: the streak ends
    slow.record(1)
    assert len(caplog.records) == 2
    assert "under 30 s again" in caplog.records[1].getMessage()
    assert slow.streaks == 1


def test_timed_model_times_every_call_even_a_failing_one() -> None:
    seen: list[float] = []

    class Recorder(SlowCalls):
        def record(self, seconds: float) -> None:
            seen.append(seconds)

    class Model:
        def __init__(self) -> None:
            self.calls = 0

        async def create(self, params: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("down")
            return {"id": params["n"]}

    timed = TimedModel(Model(), Recorder(1.0, 1, url="u"))
    assert asyncio.run(timed.create({"n": 1})) == {"id": 1}
    with pytest.raises(RuntimeError):
        asyncio.run(timed.create({"n": 2}))
    assert len(seen) == 2
    assert all(s >= 0 for s in seen)
