"""The metrics registry: every name, bounded labels, what the hot path records; readiness;
the /metrics + /healthz server; the settings at the boundary."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from gymstream.errors import ConfigError
from gymstream.observe.health import Readiness
from gymstream.observe.metrics import METRIC_NAMES, Metrics, WorkerProbe
from gymstream.observe.server import observed, serve_metrics
from gymstream.settings import MetricsSettings

ALLOWED_LABELS = {"agent", "failure_class", "kind", "consumer", "topic", "partition", "le"}


def _families(metrics: Metrics) -> dict[str, Any]:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _busy_metrics() -> Metrics:
    metrics = Metrics()
    agent = metrics.agent("a1")
    agent.started.inc()
    agent.started.inc()
    agent.finished(
        None,
        {"model_s": 0.2, "tools_s": 0.01, "verify_s": 0.003, "total_s": 0.25},
        {"input_tokens": 100, "output_tokens": 7, "total_tokens": 107},
    )
    agent.finished("model_timeout", None, None)
    agent.commit.observe(0.004)
    metrics.watch_worker(
        WorkerProbe(
            "a1", in_flight=lambda: 3, outage_open=lambda: True, lag=lambda: {("t.tasks.a1", 2): 5}
        )
    )
    metrics.watch_sink(lambda: {("t.results", 0): 0})
    sink = metrics.sink()
    sink.baseline({"a1": 4}, {}, 1)  # rows from before a restart: not counted again
    sink.progress({"a1": 6}, {"a1": 1}, 3)
    return metrics


def test_every_named_metric_is_exported_with_bounded_labels() -> None:
    families = _families(_busy_metrics())
    # the text parser names counters without their _total suffix; *_created is the client's
    # standard creation timestamp of each counter and histogram
    exported = {
        f"{name}_total" if f.type == "counter" else name
        for name, f in families.items()
        if not name.endswith("_created")
    }
    assert exported == set(METRIC_NAMES)
    for family in families.values():
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)
            assert "rollout_id" not in sample.labels
            assert "run_id" not in sample.labels


def test_the_hot_path_records_counts_latencies_and_tokens() -> None:
    m = _busy_metrics()
    a1 = {"agent": "a1"}
    assert m.sample("gymstream_rollouts_started_total", a1) == 2
    assert m.sample("gymstream_rollouts_succeeded_total", a1) == 1
    assert (
        m.sample("gymstream_rollouts_failed_total", {**a1, "failure_class": "model_timeout"}) == 1
    )
    assert m.sample("gymstream_model_seconds_count", a1) == 1
    assert m.sample("gymstream_model_seconds_sum", a1) == pytest.approx(0.2)
    assert m.sample("gymstream_tool_seconds_sum", a1) == pytest.approx(0.01)
    assert m.sample("gymstream_verify_seconds_sum", a1) == pytest.approx(0.003)
    assert m.sample("gymstream_rollout_seconds_bucket", {**a1, "le": "0.25"}) == 1
    assert m.sample("gymstream_tokens_total", {**a1, "kind": "prompt"}) == 100
    assert m.sample("gymstream_tokens_total", {**a1, "kind": "completion"}) == 7
    assert m.sample("gymstream_commit_seconds_count", {"consumer": "worker"}) == 1
    assert m.sample("gymstream_rollouts_in_flight", a1) == 3
    assert m.sample("gymstream_model_outage", a1) == 1
    lag = {"consumer": "worker", "topic": "t.tasks.a1", "partition": "2"}
    assert m.sample("gymstream_consumer_lag", lag) == 5
    sink_lag = {"consumer": "sink", "topic": "t.results", "partition": "0"}
    assert m.sample("gymstream_consumer_lag", sink_lag) == 0
    # the sink counts what it gained after its baseline, not the rows found on disk
    assert m.sample("gymstream_sink_rows_written_total", a1) == 2
    assert m.sample("gymstream_sink_failures_written_total", a1) == 1
    assert m.sample("gymstream_sink_duplicates_dropped_total") == 2


def test_a_failure_records_no_latency_and_two_registries_do_not_share_counts() -> None:
    one, two = Metrics(), Metrics()
    one.agent("a").finished("verifier_error", {"model_s": 1.0}, {"input_tokens": 5})
    assert one.sample("gymstream_model_seconds_count", {"agent": "a"}) == 0
    assert one.sample("gymstream_tokens_total", {"agent": "a", "kind": "prompt"}) == 0
    assert (
        one.sample(
            "gymstream_rollouts_failed_total", {"agent": "a", "failure_class": "verifier_error"}
        )
        == 1
    )
    two.agent("a").started.inc()
    assert one.sample("gymstream_rollouts_started_total", {"agent": "a"}) == 0
    assert two.sample("gymstream_rollouts_started_total", {"agent": "a"}) == 1


def test_readiness_needs_every_check_and_says_what_is_missing() -> None:
    ready = Readiness()
    assert ready.report() == (False, {"process": "starting: nothing registered yet"})
    state: dict[str, str | None] = {"worker/a": "no partition assigned"}
    ready.add("worker/a", lambda: state["worker/a"])
    ready.add("sink", lambda: None)
    assert ready.report() == (False, {"sink": "ok", "worker/a": "no partition assigned"})
    state["worker/a"] = None
    assert ready.report() == (True, {"sink": "ok", "worker/a": "ok"})

    def broken() -> str | None:
        raise RuntimeError("boom")

    ready.add("sink", broken)
    ok, checks = ready.report()
    assert not ok
    assert "RuntimeError: boom" in checks["sink"]


async def _get(port: int, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


async def test_the_server_answers_metrics_and_healthz() -> None:
    metrics = Metrics()
    metrics.agent("a").started.inc()
    async with serve_metrics(metrics, 0, "127.0.0.1") as port:
        status, kind, body = await _get(port, "/metrics")
        assert status == 200
        assert kind.startswith("text/plain")
        assert 'gymstream_rollouts_started_total{agent="a"} 1.0' in body
        status, kind, body = await _get(port, "/healthz")
        assert (status, kind) == (503, "application/json; charset=utf-8")
        assert json.loads(body)["ready"] is False
        metrics.readiness.add("sink", lambda: None)
        status, _, body = await _get(port, "/healthz")
        assert status == 200
        assert json.loads(body) == {"ready": True, "checks": {"sink": "ok"}}


async def test_a_taken_port_is_one_config_error_and_no_port_serves_nothing() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"--metrics-port {port}: cannot listen"):
            async with serve_metrics(Metrics(), port, "127.0.0.1"):
                pass
    async with observed(None, "127.0.0.1") as nothing:
        assert nothing is None
    async with observed(0, "127.0.0.1") as served:
        assert isinstance(served, Metrics)
    await asyncio.sleep(0)


def test_the_port_comes_from_the_environment_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert MetricsSettings().port is None  # off by default
    monkeypatch.setenv("GYMSTREAM_METRICS_PORT", "9464")
    assert MetricsSettings().port == 9464
    monkeypatch.setenv("GYMSTREAM_METRICS_PORT", "70000")
    with pytest.raises(ValidationError):
        MetricsSettings()
