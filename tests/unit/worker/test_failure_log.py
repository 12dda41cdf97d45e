"""The worker's throttled failure warnings, against a fake clock."""

from __future__ import annotations

import logging

import pytest

from gymstream.wire.messages import FailureClass
from gymstream.worker.failure_log import _HEADLINES, FailureLog

URL = "http://model:8000/v1/responses"


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def failure_log(clock: Clock) -> FailureLog:
    return FailureLog(URL, interval_s=10.0, clock=clock)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_the_first_failure_of_a_class_warns_in_words(
    failure_log: FailureLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gymstream.worker.failure_log")
    failure_log.record(FailureClass.MODEL_CONNECTION_ERROR, "r/a/0/0", "connection refused")
    assert warnings(caplog) == [
        f"model endpoint {URL} is unreachable: check that the model server is up and that "
        "GYMSTREAM_MODEL_BASE_URL points at it; 1 rollout(s) failed with model_connection_error "
        "(each is in the failures topic); latest: rollout r/a/0/0: connection refused"
    ]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["rollout r/a/0/0 failed: model_connection_error: connection refused"]


def test_within_the_interval_failures_are_counted_not_warned(
    failure_log: FailureLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    failure_log.record(FailureClass.MODEL_TIMEOUT, "r/a/0/0", "slow")
    for i in range(1, 5):
        clock.now_s += 2.0
        failure_log.record(FailureClass.MODEL_TIMEOUT, f"r/a/{i}/0", "slow")
    assert len(warnings(caplog)) == 1
    clock.now_s += 3.0  # 11 s after the first warning
    failure_log.record(FailureClass.MODEL_TIMEOUT, "r/a/5/0", "still slow")
    assert len(warnings(caplog)) == 2
    assert warnings(caplog)[1].endswith(
        "; 5 rollout(s) failed with model_timeout in the last 11 s (each is in the failures "
        "topic); latest: rollout r/a/5/0: still slow"
    )


def test_each_class_has_its_own_interval(
    failure_log: FailureLog, caplog: pytest.LogCaptureFixture
) -> None:
    failure_log.record(FailureClass.MODEL_HTTP_5XX, "r/a/0/0", "503")
    failure_log.record(FailureClass.VERIFIER_ERROR, "r/a/1/0", "boom")
    failure_log.record(FailureClass.MODEL_HTTP_5XX, "r/a/2/0", "503")
    assert len(warnings(caplog)) == 2
    assert warnings(caplog)[1].startswith(
        "rollouts are failing; 1 rollout(s) failed with verifier_error"
    )


def test_flush_due_only_reports_classes_whose_interval_is_up(
    failure_log: FailureLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    failure_log.record(FailureClass.MODEL_HTTP_429, "r/a/0/0", "429")
    failure_log.record(FailureClass.MODEL_HTTP_429, "r/a/1/0", "429")
    failure_log.flush(due_only=True)
    assert len(warnings(caplog)) == 1
    clock.now_s += 10.0
    failure_log.flush(due_only=True)
    assert len(warnings(caplog)) == 2
    assert "1 rollout(s) failed with model_http_429 in the last 10 s" in warnings(caplog)[1]
    failure_log.flush()  # nothing left uncounted
    assert len(warnings(caplog)) == 2


def test_flush_reports_every_uncounted_failure_at_once(
    failure_log: FailureLog, caplog: pytest.LogCaptureFixture
) -> None:
    failure_log.record(FailureClass.MODEL_HTTP_4XX, "r/a/0/0", "400")
    failure_log.record(FailureClass.MODEL_HTTP_4XX, "r/a/1/0", "400")
    failure_log.record(FailureClass.MODEL_HTTP_4XX, "r/a/2/0", "bad model name")
    failure_log.flush()
    assert len(warnings(caplog)) == 2
    assert "2 rollout(s) failed with model_http_4xx" in warnings(caplog)[1]
    assert warnings(caplog)[1].endswith("latest: rollout r/a/2/0: bad model name")


def test_headlines_are_keyed_by_failure_classes() -> None:
    assert set(_HEADLINES) <= set(FailureClass)
    assert all("{url}" in headline for headline in _HEADLINES.values())
