"""bench.analysis.worker_span: Little's L and W over the window in which a backlog waited."""

from __future__ import annotations

import msgspec
import pytest

from bench.__main__ import _latency_configs
from bench.analysis import worker_span
from gymstream.wire.messages import ResultMessage


def _result(i: int, start_s: float, took_s: float) -> ResultMessage:
    return ResultMessage(
        run_id="r",
        rollout_id=f"r/a/{i}/0",
        agent="a",
        task_index=i,
        rollout_index=0,
        output=msgspec.Raw(b"{}"),
        reward=1.0,
        finished_ms=round((start_s + took_s) * 1000),
        timings={"total_s": took_s, "model_s": took_s},
    )


def _closed_system(
    slots: int, waves: int, took: list[float]
) -> dict[tuple[int, int], ResultMessage]:
    """``slots`` rollouts always running, each slot refilled the moment it frees."""
    results, index = {}, 0
    for slot in range(slots):
        clock = 0.0
        for wave in range(waves):
            took_s = took[(slot + wave) % len(took)]
            results[(index, 0)] = _result(index, clock, took_s)
            clock += took_s
            index += 1
    return results


def test_full_slots_give_littles_bound_despite_a_ragged_tail() -> None:
    # 10 slots, rollouts of 0.5 s or 1.5 s (mean 1 s): bound = 10 / 1 s = 10 rollouts/s
    span = worker_span(_closed_system(10, 40, [0.5, 1.5]))
    assert span["steady_in_flight"] == pytest.approx(10, rel=0.02)
    assert span["steady_rate"] == pytest.approx(10, rel=0.05)
    # the whole span counts the tail, where slots empty one by one
    assert span["rate"] < span["steady_rate"]


def test_half_empty_slots_halve_the_rate() -> None:
    full = worker_span(_closed_system(10, 20, [1.0]))
    half = worker_span(_closed_system(5, 20, [1.0]))
    assert full["steady_rate"] == pytest.approx(10, rel=0.01)
    assert half["steady_rate"] == pytest.approx(full["steady_rate"] / 2, rel=0.01)


def test_slower_rollouts_lower_the_rate() -> None:
    slow = worker_span(_closed_system(10, 20, [1.25]))
    assert slow["steady_rollout_s"] == pytest.approx(1.25)
    assert slow["steady_rate"] == pytest.approx(8, rel=0.01)


def test_latency_configurations_parse() -> None:
    assert _latency_configs("256,1024,2x512") == [(1, 256), (1, 1024), (2, 512)]
