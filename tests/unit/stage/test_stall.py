"""StallWatch: a gap between two ticks longer than the limit is a freeze, said once."""

from __future__ import annotations

from gymstream.stage.stall import StallWatch


def test_a_freeze_longer_than_the_limit_is_reported_once_with_its_length() -> None:
    now = [0.0]
    seen: list[float] = []
    watch = StallWatch(6.0, seen.append, clock=lambda: now[0])
    for step in [0.5, 0.5, 5.9, 0.5, 8.0, 0.5, 0.5]:
        now[0] += step
        watch.tick()
    assert seen == [8.0]
