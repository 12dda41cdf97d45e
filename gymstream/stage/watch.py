"""A stage's metrics watch: its consumer lag, measured on its own schedule, and its readiness.

One per stage with a metrics port (the worker's and the sink's): the lag of the partitions its
consumer holds (``observe.lag.LagMeter``, at most once a second and once at the end), and the
``/readyz`` check that it holds any. What a stage adds to readiness (the worker's model outage)
is its ``also_ready`` check; its probes and counters are registered by the stage itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gymstream.observe.lag import LagMeter
from gymstream.observe.metrics import Lag, Metrics

__all__ = ["StageWatch"]


class StageWatch:
    """Lag and readiness of the stage ``name``; ``consumer()`` is its consumer (None before).

    ``committed(tp)`` is the stage's own committed position when it keeps one (the worker's
    watermark); ``unassigned`` is what readiness says while no partition is assigned.
    """

    def __init__(
        self,
        metrics: Metrics,
        name: str,
        consumer: Callable[[], Any],
        *,
        unassigned: str,
        committed: Callable[[Any], int | None] | None = None,
        also_ready: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.consumer = consumer
        self.unassigned = unassigned
        self.committed = committed
        self.also_ready = also_ready
        self.meter = LagMeter()
        metrics.readiness.add(name, self.not_ready)

    def lag(self) -> Lag:
        """The last lag measured (read at scrape time)."""
        return self.meter.lag

    def not_ready(self) -> str | None:
        """None when ready, else what is not."""
        consumer = self.consumer()
        if consumer is None or not consumer.assignment():
            return self.unassigned
        return self.also_ready()

    async def measure_lag(self, *, force: bool = False) -> None:
        """Measure the lag if a second has passed since the last time (or ``force``)."""
        consumer = self.consumer()
        if consumer is not None:
            await self.meter.measure(consumer, self.committed, force=force)
