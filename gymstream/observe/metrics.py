"""Every Prometheus metric gymstream exports, named once, in one registry per process.

``Metrics()`` builds a fresh ``CollectorRegistry`` (never prometheus-client's global one, so
two workers or two tests in one process do not collide) holding every metric below. The hot
path gets per-agent handles (``Metrics.agent``) whose labelled children are resolved once, so
recording a rollout is a few lock-protected additions. What is a *state* rather than an event
(rollouts in flight, the model outage, consumer lag) is read at scrape time from the probes the
worker and the sink register (``watch_worker``, ``watch_sink``): nothing on the hot path.

Labels are bounded: ``agent``, ``failure_class``, ``kind`` (prompt / completion), ``consumer``
(worker / sink), ``topic`` and ``partition``; never a rollout or run id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gymstream.observe.health import Readiness

__all__ = ["LATENCY_BUCKETS", "METRIC_NAMES", "AgentMetrics", "Metrics", "SinkMetrics"]

log = logging.getLogger("gymstream.observe.metrics")

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds: a model call or tool call takes milliseconds (scripted) to minutes (long reasoning)."""
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Lag = Mapping[tuple[str, int], int]
"""Consumer lag per (topic, partition): end offset - committed position."""


@dataclass(frozen=True)
class WorkerProbe:
    """What a worker reports at scrape time (each callable is cheap and never awaits)."""

    agent: str
    in_flight: Callable[[], int]
    outage_open: Callable[[], bool]
    lag: Callable[[], Lag]


class _Live(Collector):
    """The gauges read at scrape time from the registered probes."""

    def __init__(self) -> None:
        self.workers: list[WorkerProbe] = []
        self.sinks: list[Callable[[], Lag]] = []

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "gymstream_rollouts_in_flight",
            "Rollouts taken and not yet finished (their output not yet acknowledged by Kafka).",
            labels=["agent"],
        )
        outage = GaugeMetricFamily(
            "gymstream_model_outage",
            "1 while the worker's model endpoint is down (intake paused, rollouts retrying).",
            labels=["agent"],
        )
        lag = GaugeMetricFamily(
            "gymstream_consumer_lag",
            "Messages between the committed position and the end of each partition.",
            labels=["consumer", "topic", "partition"],
        )
        for probe in self.workers:
            in_flight.add_metric([probe.agent], probe.in_flight())
            outage.add_metric([probe.agent], 1.0 if probe.outage_open() else 0.0)
            _add_lag(lag, "worker", probe.lag())
        for sink_lag in self.sinks:
            _add_lag(lag, "sink", sink_lag())
        yield in_flight
        yield outage
        yield lag


def _add_lag(family: GaugeMetricFamily, consumer: str, lag: Lag) -> None:
    for (topic, partition), value in sorted(lag.items()):
        family.add_metric([consumer, topic, str(partition)], value)


class Metrics:
    """The registry of one process and every metric in it; see the module docstring."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.readiness = Readiness()
        r = self.registry
        self.started = Counter(
            "gymstream_rollouts_started", "Rollouts taken from Kafka.", ["agent"], registry=r
        )
        self.succeeded = Counter(
            "gymstream_rollouts_succeeded",
            "Rollouts whose result Kafka acknowledged.",
            ["agent"],
            registry=r,
        )
        self.failed = Counter(
            "gymstream_rollouts_failed",
            "Rollouts whose typed failure Kafka acknowledged, by failure class.",
            ["agent", "failure_class"],
            registry=r,
        )
        self.latency = {
            stage: Histogram(
                f"gymstream_{stage}_seconds",
                f"Seconds per rollout spent {what} (summed over its turns).",
                ["agent"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
            for stage, what in (
                ("model", "in model calls"),
                ("tool", "in tool calls"),
                ("verify", "in the verifier"),
                ("rollout", "from the start of the rollout to its result"),
            )
        }
        self.tokens = Counter(
            "gymstream_tokens",
            "Tokens the model reported (usage), kind = prompt or completion.",
            ["agent", "kind"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "gymstream_commit_seconds",
            "Seconds per offset commit.",
            ["consumer"],
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.rows_written = Counter(
            "gymstream_sink_rows_written",
            "Rows the sink appended (and fsynced) to the output file.",
            ["agent"],
            registry=r,
        )
        self.failures_written = Counter(
            "gymstream_sink_failures_written",
            "Failure rows the sink appended to the failures file.",
            ["agent"],
            registry=r,
        )
        self.duplicates = Counter(
            "gymstream_sink_duplicates_dropped",
            "Results and failures the sink dropped as repeats of a rollout already written.",
            registry=r,
        )
        self._live = _Live()
        r.register(self._live)

    def agent(self, agent: str) -> AgentMetrics:
        """The hot-path handle of one agent's worker."""
        return AgentMetrics(self, agent)

    def sink(self) -> SinkMetrics:
        """The handle of a sink."""
        return SinkMetrics(self)

    def watch_worker(self, probe: WorkerProbe) -> None:
        self._live.workers.append(probe)

    def watch_sink(self, lag: Callable[[], Lag]) -> None:
        self._live.sinks.append(lag)

    def sample(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The current value of one sample (for tests and summaries), None if absent."""
        return self.registry.get_sample_value(name, dict(labels or {}))


class AgentMetrics:
    """One agent's worker metrics, labelled children resolved once."""

    __slots__ = ("_failed", "_hist", "_parent", "agent", "commit", "started", "succeeded", "tokens")

    def __init__(self, metrics: Metrics, agent: str) -> None:
        self.agent = agent
        self._parent = metrics
        self.started = metrics.started.labels(agent)
        self.succeeded = metrics.succeeded.labels(agent)
        self._failed: dict[str, Any] = {}
        self._hist = [
            (key, metrics.latency[stage].labels(agent))
            for key, stage in (
                ("model_s", "model"),
                ("tools_s", "tool"),
                ("verify_s", "verify"),
                ("total_s", "rollout"),
            )
        ]
        self.tokens = (
            metrics.tokens.labels(agent, "prompt"),
            metrics.tokens.labels(agent, "completion"),
        )
        self.commit = metrics.commit_seconds.labels("worker")

    def finished(
        self,
        failure_class: str | None,
        timings: Mapping[str, float] | None,
        usage: Mapping[str, Any] | None,
    ) -> None:
        """A rollout's output was acknowledged: count it, its latencies and its tokens."""
        if failure_class is not None:
            child = self._failed.get(failure_class)
            if child is None:
                child = self._failed[failure_class] = self._parent.failed.labels(
                    self.agent, failure_class
                )
            child.inc()
            return
        self.succeeded.inc()
        if timings:
            for key, histogram in self._hist:
                seconds = timings.get(key)
                if seconds is not None:
                    histogram.observe(seconds)
        if usage:
            prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
            if isinstance(prompt, int) and prompt > 0:
                self.tokens[0].inc(prompt)
            if isinstance(completion, int) and completion > 0:
                self.tokens[1].inc(completion)


class SinkMetrics:
    """A sink's metrics: counts follow its report (``progress``), commits are timed."""

    def __init__(self, metrics: Metrics) -> None:
        self._parent = metrics
        self.commit = metrics.commit_seconds.labels("sink")
        self._written: dict[str, int] = {}
        self._failed: dict[str, int] = {}
        self._duplicates = 0

    def baseline(self, written: Mapping[str, int], failed: Mapping[str, int], dups: int) -> None:
        """What the report held before this process wrote anything (not counted)."""
        self._written, self._failed, self._duplicates = dict(written), dict(failed), dups

    def progress(self, written: Mapping[str, int], failed: Mapping[str, int], dups: int) -> None:
        """Count what the report gained since the last call (once per batch)."""
        _advance(self._parent.rows_written, self._written, written)
        _advance(self._parent.failures_written, self._failed, failed)
        if dups > self._duplicates:
            self._parent.duplicates.inc(dups - self._duplicates)
            self._duplicates = dups


def _advance(counter: Counter, seen: dict[str, int], now: Mapping[str, int]) -> None:
    for agent, total in now.items():
        delta = total - seen.get(agent, 0)
        if delta > 0:
            counter.labels(agent).inc(delta)
            seen[agent] = total


METRIC_NAMES = (
    "gymstream_rollouts_started_total",
    "gymstream_rollouts_succeeded_total",
    "gymstream_rollouts_failed_total",
    "gymstream_rollouts_in_flight",
    "gymstream_model_seconds",
    "gymstream_tool_seconds",
    "gymstream_verify_seconds",
    "gymstream_rollout_seconds",
    "gymstream_tokens_total",
    "gymstream_commit_seconds",
    "gymstream_consumer_lag",
    "gymstream_model_outage",
    "gymstream_sink_rows_written_total",
    "gymstream_sink_failures_written_total",
    "gymstream_sink_duplicates_dropped_total",
)
"""Every metric family as scraped (counters get ``_total``), in the README's order."""
