"""bench.nemo_gym_vs's arithmetic on synthetic runs: hops, CPU groups, ratios, the row check."""

from __future__ import annotations

from typing import Any

import pytest

from bench.nemo_gym_vs import render, summarise


def _run(
    side: str,
    rate: float,
    cpu: dict[str, float],
    http: dict[str, dict[str, int]],
    rewards: dict[str, float],
) -> dict[str, Any]:
    return {
        "side": side,
        "n": 10,
        "rate_whole": rate,
        "rate_steady": rate * 2,
        "rows": len(rewards),
        "rewards": rewards,
        "cpu_s": cpu,
        "http": http,
        "loadavg": (1.5, 1.0, 1.0),
    }


REWARDS = {f"{i}:0": float(i % 2) for i in range(10)}
NG_HTTP = {
    "environment_server": {"/run": 10, "/aggregate_metrics": 1},
    "agent": {"/run": 10, "/v1/responses": 10},
    "policy_model": {"/v1/responses": 20},
    "resources": {"/seed_session": 10, "/get_weather": 10, "/verify": 10, "/health": 1},
    "fake_model": {"requests": 20, "responses": 20},
}
GS_HTTP = {
    "resources": {"/seed_session": 10, "/get_weather": 10, "/verify": 10, "/aggregate_metrics": 1},
    "fake_model": {"requests": 20, "responses": 20},
}
NG_CPU = {
    "collector": 3.0,
    "environment_server": 0.5,
    "agent_server": 1.0,
    "model_server": 0.5,
    "resources_server": 0.2,
    "fake_model": 0.1,
    "bench": 0.3,
}
GS_CPU = {"collector": 1.0, "broker": 0.2, "resources_server": 0.2, "fake_model": 0.1}
STARTUP = {"nemo_gym": 2.0, "gymstream": 0.5}


def _runs(gs_rewards: dict[str, float] = REWARDS) -> list[dict[str, Any]]:
    return [
        _run("nemo_gym", 10.0, NG_CPU, NG_HTTP, REWARDS),
        _run("gymstream", 30.0, GS_CPU, GS_HTTP, gs_rewards),
        _run("nemo_gym", 20.0, NG_CPU, NG_HTTP, REWARDS),
        _run("gymstream", 50.0, GS_CPU, GS_HTTP, gs_rewards),
    ]


def test_figures_per_side_and_ratios() -> None:
    s = summarise(_runs(), STARTUP)
    ng, gs = s["nemo_gym"], s["gymstream"]
    assert ng["rate_whole"] == {"median": 15.0, "min": 10.0, "max": 20.0}
    assert ng["hops"]["median"] == pytest.approx(10.0)  # /health and /aggregate_metrics left out
    assert gs["hops"]["median"] == pytest.approx(5.0)  # the model's "requests" total not twice
    assert ng["own_cpu_ms"]["median"] == pytest.approx(500.0)  # collector + 3 servers, not bench
    assert ng["own_cpu_ms_without_startup"]["median"] == pytest.approx(300.0)
    assert gs["own_cpu_ms"]["median"] == pytest.approx(100.0)  # the broker is apart
    assert gs["broker_cpu_ms"]["median"] == pytest.approx(20.0)
    assert gs["own_and_broker_cpu_ms"]["median"] == pytest.approx(120.0)
    assert s["ratio"]["own_and_broker_cpu"] == pytest.approx(500.0 / 120.0)
    assert gs["shared_cpu_ms"]["median"] == pytest.approx(30.0)
    assert s["ratio"]["rate_whole"] == pytest.approx(40.0 / 15.0)
    assert s["ratio"]["own_cpu"] == pytest.approx(5.0)
    assert s["ratio"]["hops"] == pytest.approx(2.0)
    assert s["rows"]["same"]
    assert s["rows"]["all_n"]
    text = render(
        {
            "meta": {"machine": {"nproc": 2}, "loadavg_start": (1.0,), "kafka": "k"},
            "params": {"rollouts": 10, "concurrency": 4},
            "environments": {"example_single_tool_call": s},
        },
        markdown=True,
    )
    assert "| rollouts/s, whole command | 15 (10-20) | 40 (30-50) | 2.7x |" in text


def test_a_different_reward_or_a_missing_row_is_reported() -> None:
    changed = {**REWARDS, "3:0": 0.5}
    assert summarise(_runs(changed), STARTUP)["rows"]["rows_differing_from_first_run"] == [
        0,
        1,
        0,
        1,
    ]
    missing = {k: v for k, v in REWARDS.items() if k != "9:0"}
    rows = summarise(_runs(missing), STARTUP)["rows"]
    assert not rows["same"]
    assert not rows["all_n"]
