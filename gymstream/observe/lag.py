"""Consumer lag per partition: the end offset (the fetcher's high watermark) - the committed
position, for the partitions a consumer holds. Read on the command's own schedule (about once a
second, and after the last commit), never per message."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError

from gymstream.observe.metrics import Lag

__all__ = ["LAG_INTERVAL_S", "LagMeter", "consumer_lag"]

LAG_INTERVAL_S = 1.0
"""How often a command re-measures its lag (at a commit; the high watermark needs no request)."""
POSITION_WAIT_S = 0.5
"""A measurement that has to wait longer for a position is dropped (the last one stays)."""


async def consumer_lag(consumer: Any, committed: Callable[[Any], int | None] | None = None) -> Lag:
    """Lag per (topic, partition) assigned to ``consumer`` (an aiokafka consumer).

    ``committed(tp)`` is the caller's own committed position when it keeps one (the worker's
    watermark); otherwise, or when it returns None, the consumer's position is used (the sink
    commits its position after every batch). Partitions whose end is not known yet (nothing
    fetched) are left out.
    """
    lag: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        position = committed(tp) if committed is not None else None
        if position is None:
            position = await consumer.position(tp)
        lag[tp.topic, tp.partition] = max(0, end - position)
    return lag


class LagMeter:
    """The last lag measured for one consumer, re-measured at most every ``interval_s``."""

    def __init__(self, interval_s: float = LAG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.lag: Lag = {}
        self._measured = float("-inf")

    async def measure(
        self,
        consumer: Any,
        committed: Callable[[Any], int | None] | None = None,
        *,
        force: bool = False,
    ) -> None:
        """Measure now if ``interval_s`` has passed (or ``force``); a Kafka error, or a position
        not known within ``POSITION_WAIT_S``, keeps the last measurement."""
        now = time.monotonic()
        if not force and now - self._measured < self.interval_s:
            return
        self._measured = now
        # a position being reset (a seek) is waited for up to the request timeout: never here
        with contextlib.suppress(KafkaError, TimeoutError):
            async with asyncio.timeout(POSITION_WAIT_S):
                self.lag = await consumer_lag(consumer, committed)
