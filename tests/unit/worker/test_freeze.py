"""Freezes: a deadline that fires across a freeze the stall watch found is not a failure."""

from __future__ import annotations

from gymstream.worker.freeze import Freezes


def test_a_freeze_counts_only_for_attempts_begun_before_it_ended() -> None:
    now = [100.0]
    freezes = Freezes(clock=lambda: now[0])
    began = freezes.now()
    assert not freezes.since(began)
    now[0] = 110.0
    freezes.record(9.5)
    assert freezes.since(began)
    assert not freezes.since(freezes.now() + 0.1)  # an attempt begun after the thaw


def test_the_watch_is_asked_first() -> None:
    """After a thaw the deadline's timer may run before the watch's own tick."""
    now = [0.0]
    freezes = Freezes(clock=lambda: now[0])
    freezes.check = lambda: freezes.record(8.0)  # what the stall watch's tick does after a gap
    now[0] = 10.0
    assert freezes.since(5.0)
