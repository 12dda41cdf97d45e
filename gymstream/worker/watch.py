"""The metrics side of one worker (only with a metrics port): its hot-path counters, the gauges
read at scrape time (in flight, the model outage, consumer lag) and its readiness check.

Readiness: partitions of the agent's task topic assigned, and the model endpoint answering as
far as the outage state knows (``outage.ModelOutage``: its probes are the rollouts' own
retries, so ``/healthz`` never sends the model a request of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gymstream.kafka.offsets import OffsetTracker
from gymstream.observe.lag import LagMeter
from gymstream.observe.metrics import Metrics, WorkerProbe
from gymstream.worker.outage import ModelOutage

__all__ = ["WorkerWatch"]


class WorkerWatch:
    """Metrics of one agent's worker; ``consumer()`` is the worker's consumer (None before)."""

    def __init__(
        self,
        metrics: Metrics,
        agent: str,
        topic: str,
        *,
        outage: ModelOutage,
        in_flight: Callable[[], int],
        consumer: Callable[[], Any],
        tracker: OffsetTracker[Any],
    ) -> None:
        self.record = metrics.agent(agent)
        self.topic = topic
        self.outage = outage
        self.consumer = consumer
        self.tracker = tracker
        self.meter = LagMeter()
        metrics.watch_worker(
            WorkerProbe(
                agent,
                in_flight=in_flight,
                outage_open=lambda: outage.since is not None,
                lag=lambda: self.meter.lag,
            )
        )
        metrics.readiness.add(f"worker/{agent}", self.not_ready)

    def not_ready(self) -> str | None:
        """None when ready, else what is not (see the module docstring)."""
        consumer = self.consumer()
        if consumer is None or not consumer.assignment():
            return (
                f"no partition of {self.topic} assigned (joining the group, or more workers "
                "than partitions)"
            )
        since = self.outage.since
        if since is not None:
            return f"model endpoint down for {self.outage.now() - since:.0f} s"
        return None

    async def measure_lag(self, *, force: bool = False) -> None:
        """Measure the lag if a second has passed since the last time (or ``force``)."""
        await self.meter.measure(self.consumer(), self.tracker.committed, force=force)
