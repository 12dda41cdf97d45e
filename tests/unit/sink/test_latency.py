"""Latency percentiles in bounded memory: close to the exact ones, as NeMo Gym computes them."""

from __future__ import annotations

import random

import pytest

from gymstream.sink.latency import MAX_BUCKETS, MAX_NAMES, RATIO, LogHistogram, Timings


def exact_quantile(values: list[float], q: float) -> float:
    """NeMo Gym's DispatchLatencyTracker.quantile: linear between the ranks of sorted values."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] * (1 - (pos - low)) + ordered[high] * (pos - low)


def filled(values: list[float]) -> LogHistogram:
    histogram = LogHistogram()
    for value in values:
        histogram.add(value)
    return histogram


def test_an_empty_histogram_has_no_quantile() -> None:
    assert LogHistogram().quantile(0.5) is None


def test_one_value_is_every_quantile() -> None:
    histogram = filled([0.25])
    assert [histogram.quantile(q) for q in (0.0, 0.5, 0.99, 1.0)] == [0.25] * 4


def test_one_to_a_thousand_ms() -> None:
    values = [i / 1000 for i in range(1, 1001)]
    histogram = filled(values)
    assert histogram.count == 1000
    assert histogram.total == pytest.approx(sum(values))
    assert (histogram.min, histogram.max) == (0.001, 1.0)
    for q, exact in ((0.5, 0.5005), (0.9, 0.9001), (0.99, 0.99001)):
        assert exact_quantile(values, q) == pytest.approx(exact)
        assert histogram.quantile(q) == pytest.approx(exact, rel=RATIO - 1)
    assert histogram.quantile(1.0) == 1.0  # the exact maximum
    assert histogram.quantile(0.0) == 0.001  # the exact minimum


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_heavy_tailed_durations_within_two_percent(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(0.0, 1.5) for _ in range(20_000)]
    histogram = filled(values)
    for q in (0.5, 0.9, 0.99):
        assert histogram.quantile(q) == pytest.approx(exact_quantile(values, q), rel=RATIO - 1)


def test_a_long_tail_moves_p99_not_p50() -> None:
    values = [0.1] * 980 + [30.0] * 20
    histogram = filled(values)
    assert histogram.quantile(0.5) == pytest.approx(0.1, rel=RATIO - 1)
    assert histogram.quantile(0.99) == pytest.approx(30.0, rel=RATIO - 1)


def test_zeros_count_and_sit_below_everything() -> None:
    histogram = filled([0.0, 0.0, 0.0, 2.0])
    assert histogram.zeros == 3
    assert histogram.quantile(0.5) == 0.0
    assert histogram.quantile(1.0) == 2.0


def test_memory_is_bounded_by_the_bucket_count() -> None:
    histogram = filled([10 ** (k / 50) for k in range(-400, 700)] * 3)  # 1e-8 .. 1e14 s
    assert histogram.count == 3300
    assert len(histogram.buckets) <= MAX_BUCKETS
    assert histogram.quantile(1.0) == histogram.max


def test_timings_keep_one_histogram_per_name_and_a_bounded_number_of_names() -> None:
    timings = Timings()
    timings.add({"total_s": 1.0, "model_s": 0.5})
    timings.add({"total_s": 3.0, "model_s": 1.5, "tools_s": 0.0})
    assert sorted(timings.by_name) == ["model_s", "tools_s", "total_s"]
    assert timings.by_name["total_s"].count == 2
    assert timings.by_name["tools_s"].zeros == 1
    for i in range(3 * MAX_NAMES):
        timings.add({f"custom_{i}_s": 1.0})
    assert len(timings.by_name) == MAX_NAMES
