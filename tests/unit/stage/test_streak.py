"""Streak: a run of like events is said once when it starts and once when it ends."""

from __future__ import annotations

import logging

import pytest

from gymstream.stage.streak import Streak

log = logging.getLogger("tests.streak")


def test_a_streak_is_logged_at_its_start_and_its_end_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    streak = Streak(log, clock=lambda: now[0])
    assert streak.end("not on: never said") is False
    started = [streak.hit("down (%s)", n) for n in range(5)]
    assert started == [True, False, False, False, False]
    assert streak.active
    assert streak.count == 5
    now[0] = 7.5
    assert streak.end("up after %.1f s, %d events", streak.elapsed(), streak.count) is True
    assert streak.end("said twice") is False
    assert [r.getMessage() for r in caplog.records] == ["down (0)", "up after 7.5 s, 5 events"]
    assert not streak.active
    assert streak.count == 0
    assert streak.elapsed() == 0.0


def test_each_streak_counts_and_a_message_may_be_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streak = Streak(log, level=logging.ERROR)
    streak.hit()  # silent: someone else said it
    streak.end()
    streak.hit("again")
    streak.hit("again")
    assert streak.streaks == 2
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.ERROR, "again")]
