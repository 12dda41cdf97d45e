"""A model outage: pause, retry in flight, resume; over budget, fail as before (driven clock)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from test_runner import ANSWER, WHERE, make_runner, task_bytes

from gymstream.errors import ModelCallError, ModelResponseError
from gymstream.wire.codec import DECODE_FAILURE
from gymstream.wire.messages import FailureClass
from gymstream.worker.outage import ModelOutage, is_outage

DOWN = ModelCallError("connection refused", failure_class=FailureClass.MODEL_CONNECTION_ERROR)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_an_outage_pauses_until_the_model_answers_and_logs_each_change_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = ModelOutage(60.0, clock=clock)
    assert not outage.paused
    assert outage.should_retry(DOWN, started=99.0, first=True)
    clock.t = 110.0
    assert outage.should_retry(DOWN, started=105.0, first=False)  # still down: keep trying
    assert outage.paused
    outage.answered()
    assert not outage.paused
    messages = [r.getMessage() for r in caplog.records if r.name == "gymstream.worker.outage"]
    assert len(messages) == 2, messages
    assert messages[0].startswith("model endpoint is down (connection refused): pausing intake")
    assert messages[1] == "model endpoint answers again after 10 s: taking tasks again"


def test_an_outage_over_its_budget_fails_rollouts_and_resumes_intake(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = ModelOutage(60.0, clock=clock)
    assert outage.should_retry(DOWN, started=100.0, first=True)
    clock.t = 161.0
    assert not outage.should_retry(DOWN, started=150.0, first=False)
    assert not outage.should_retry(DOWN, started=150.0, first=False)
    assert not outage.paused  # intake resumes, so the run completes with typed failures
    over = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(over) == 1
    assert "over the outage budget of 60 s" in over[0].getMessage()


def test_a_failure_while_the_model_answers_others_is_the_rollouts_own() -> None:
    clock = Clock()
    outage = ModelOutage(60.0, clock=clock)
    outage.answered()  # at 100, another rollout got an answer
    assert outage.should_retry(DOWN, started=90.0, first=True)  # one more try
    assert not outage.should_retry(DOWN, started=90.0, first=False)
    assert not outage.paused  # no outage declared
    assert outage.backoff(0) <= 0.2
    assert outage.backoff(10) <= 5.0


def test_only_endpoint_failures_are_outages() -> None:
    assert is_outage(DOWN)
    assert is_outage(ModelCallError("503", failure_class=FailureClass.MODEL_HTTP_5XX))
    assert not is_outage(ModelResponseError("400", failure_class=FailureClass.MODEL_HTTP_4XX))
    assert not is_outage(ValueError("bug"))


@dataclass
class Restarting:
    """Down for the first ``down`` calls, then answers."""

    down: int
    calls: int = 0

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.down:
            raise DOWN
        return ANSWER


async def test_a_rollout_in_flight_waits_out_an_outage_and_succeeds() -> None:
    model = Restarting(down=3)
    runner = make_runner(model)  # type: ignore[arg-type]
    fast = ModelOutage(60.0, backoff_initial_s=0.01, backoff_max_s=0.02)
    runner = type(runner)(**{**runner.__dict__, "outage": fast})
    out = await asyncio.wait_for(runner.outcome(task_bytes(), WHERE), 5.0)
    assert (out.topic, out.failure) == ("t.results", None)
    assert model.calls == 4
    assert not fast.paused


async def test_a_rollout_fails_typed_when_the_outage_outlasts_its_budget() -> None:
    runner = make_runner(Restarting(down=10**6))  # type: ignore[arg-type]
    short = ModelOutage(0.05, backoff_initial_s=0.01, backoff_max_s=0.02)
    runner = type(runner)(**{**runner.__dict__, "outage": short})
    out = await asyncio.wait_for(runner.outcome(task_bytes(), WHERE), 5.0)
    failure = DECODE_FAILURE.decode(out.value)
    assert (failure.failure_class, failure.terminal) == ("model_connection_error", False)


def test_the_progress_note_says_the_outage_while_it_lasts() -> None:
    """Issue 19 item 4: the progress line shows the pause (it said nothing after one warning)."""
    from gymstream.cli.worker import worker_figures
    from gymstream.worker.loop import WorkerStats
    from gymstream.worker.outage import with_outage

    now = [0.0]
    outage = ModelOutage(budget_s=300, clock=lambda: now[0])
    stats = WorkerStats(outage=outage)
    assert worker_figures(stats).note == ""
    outage.should_retry(ModelCallError("down"), started=-1.0, first=True)
    now[0] = 42.0
    assert worker_figures(stats).note == "model down for 42 s, intake paused"
    assert with_outage([None, outage], "mean reward 0.50") == (
        "model down for 42 s, intake paused; mean reward 0.50"
    )
    now[0] = 400.0
    assert outage.note() == "model down for 400 s, over its 300 s budget: rollouts fail"
    outage.answered()
    assert with_outage([outage], "mean reward 0.50") == "mean reward 0.50"
