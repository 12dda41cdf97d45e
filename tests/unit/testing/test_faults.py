"""Fault injection on its own: no faults by default, seeded draws, hangs, range checks."""

from __future__ import annotations

from typing import Any

import pytest

from gymstream.testing.faults import HANG_S, Faults


def test_no_rates_inject_nothing_and_delay_is_the_latency() -> None:
    faults = Faults(latency_ms=250)
    assert [faults.inject() for _ in range(100)] == [None] * 100
    assert faults.delay() == 0.25


def test_error_rate_one_injects_500_and_503_after_the_latency() -> None:
    faults = Faults(latency_ms=10, error_rate=1.0, seed=1)
    injected = [faults.inject() for _ in range(200)]
    assert all(i is not None and i[0] == "errors_injected" for i in injected)
    assert {i[2] for i in injected if i is not None} == {500, 503}
    assert {i[1] for i in injected if i is not None} == {0.01}


def test_hang_rate_one_waits_hang_s_then_504() -> None:
    injected = Faults(hang_rate=1.0).inject()
    assert injected is not None
    kind, delay_s, status, _body = injected
    assert (kind, delay_s, status) == ("hangs_injected", HANG_S, 504)


def test_same_seed_same_draws() -> None:
    def draws(seed: int) -> list[int | None]:
        faults = Faults(error_rate=0.3, hang_rate=0.2, seed=seed)
        return [None if (i := faults.inject()) is None else i[2] for _ in range(300)]

    assert draws(4) == draws(4)
    assert draws(4) != draws(5)
    assert {None, 500, 503, 504} == set(draws(4))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"latency_ms": -1.0}, "latency_ms must be >= 0"),
        ({"error_rate": 1.5}, "error_rate must be between 0 and 1"),
        ({"hang_rate": -0.1}, "hang_rate must be between 0 and 1"),
        ({"error_rate": 0.6, "hang_rate": 0.6}, "must not exceed 1"),
    ],
)
def test_out_of_range_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**settings)
