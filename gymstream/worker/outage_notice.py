"""A worker's model outage, told to `gymstream status` on the runs topic.

``OutageNotice.update`` (called by the worker loop at each commit interval, and when it stops)
compares the outage state (``worker.outage.ModelOutage``) with what it last published: when an
outage begins it sends a ``ModelOutageRecord`` under ``outage/<namespace>/<agent>/<host:pid>``,
when it ends (or the worker stops) a tombstone under the same key, so the compacted topic keeps
only outages that last. For observers only: a send that fails is logged and tried again at the
next update; it never stops or holds up the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from gymstream.kafka.topics import TopicLayout
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import model_outage_key
from gymstream.wire.records import ModelOutageRecord
from gymstream.worker.outage import ModelOutage

__all__ = ["OutageNotice"]

log = logging.getLogger("gymstream.worker.outage")

SEND_TIMEOUT_S = 5.0


class OutageNotice:
    """Publishes one worker's outage state changes; see the module docstring."""

    def __init__(self, layout: TopicLayout, agent: str, outage: ModelOutage) -> None:
        self._topic = layout.runs
        self._outage = outage
        worker = f"{socket.gethostname()}:{os.getpid()}"
        self._key = model_outage_key(layout.namespace, agent, worker)
        self._record = ModelOutageRecord(
            agent=agent, worker=worker, namespace=layout.namespace, budget_s=outage.budget_s
        )
        self._published: float | None = None  # the outage start told (its monotonic since)

    async def update(self, producer: Any, *, stopping: bool = False) -> None:
        """Tell a new outage, or that it ended (``stopping``: the worker's outage ends too)."""
        since = None if stopping else self._outage.since
        if since == self._published:
            return
        if since is None:
            value = None  # a tombstone: the outage is over
        else:
            down_ms = (self._outage.now() - since) * 1000
            record = ModelOutageRecord(
                agent=self._record.agent,
                worker=self._record.worker,
                namespace=self._record.namespace,
                down_since_ms=int(time.time() * 1000 - down_ms),
                budget_s=self._record.budget_s,
            )
            value = ENCODER.encode(record)
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):  # a broker outage must not hold intake
                await producer.send_and_wait(self._topic, value, key=self._key)
        except Exception as exc:  # boundary: observers' record only, the worker goes on
            log.warning("could not publish the model outage to %s: %s", self._topic, exc)
            return
        self._published = since
