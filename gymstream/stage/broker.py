"""Say when Kafka stops answering and when it is back: once each, with the outage's length.

During a broker outage the clients retry by themselves (nothing is lost: offsets stay open) and
aiokafka's own logs are off below ``--verbose``, so a worker or sink said nothing for a
52-second outage. ``BrokerWatch`` asks the brokers for the metadata of the client's own topics
every ``interval_s`` (one small request, on the client's own connections); the first probe
that fails or takes longer than ``timeout_s`` logs one warning, the first that
answers after that logs how long Kafka was away (a ``Streak``). A line per state change, never
per retry. The stage runtime (``stage.runtime.Stage.watch_broker``) starts one per stage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError

from gymstream.eventloop import Periodic
from gymstream.stage.streak import Streak

__all__ = ["BrokerWatch", "watch_consumer"]

log = logging.getLogger("gymstream.stage.broker")

PROBE_TIMEOUT_S = 10.0


class BrokerWatch:
    """Probe the cluster every ``interval_s``; log the outages of ``who`` once each way."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[Any]],
        *,
        who: str,
        bootstrap: str,
        interval_s: float,
        timeout_s: float,
    ) -> None:
        self.probe = probe
        self.who = who
        self.bootstrap = bootstrap
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.down = Streak(log)
        self._ticker = Periodic(interval_s, self.check)

    async def check(self) -> bool:
        """One probe; logs a change of state. True when Kafka answered."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.probe()
        except (KafkaError, TimeoutError, OSError) as exc:
            self.down.hit(
                "%s: Kafka at %s stopped answering (%s); waiting for it: nothing is lost, "
                "uncommitted work stays in Kafka",
                self.who,
                self.bootstrap,
                str(exc) or f"no answer within {self.timeout_s:.0f} s",
            )
            return False
        self.down.end(
            "%s: Kafka at %s answers again, after %.1f s away",
            self.who,
            self.bootstrap,
            self.down.elapsed(),
        )
        return True

    @property
    def outages(self) -> int:
        """Outages seen since the watch began."""
        return self.down.streaks

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()


async def _own_metadata(consumer: Any) -> None:
    """Ask the brokers for the metadata of the topics ``consumer`` tracks (its subscription).

    Not ``consumer.topics()``, the only public metadata call: that asks for every topic of the
    cluster (1,935 topics on the shared test broker: 0.7 s and megabytes a probe). aiokafka's
    ``force_metadata_update`` (its client is pinned in the locks) asks only for the tracked
    topics and answers False, at once, when no broker can be reached."""
    if not await consumer._client.force_metadata_update():
        raise KafkaConnectionError("no broker answered a metadata request")


def watch_consumer(consumer: Any, *, who: str, bootstrap: str, interval_s: float) -> BrokerWatch:
    """A started ``BrokerWatch`` over ``consumer``'s metadata. A refused connection fails at
    once; a broker that hangs counts as gone after ``PROBE_TIMEOUT_S`` (not less: a busy
    broker's slow answer is no outage)."""
    timeout_s = max(interval_s, PROBE_TIMEOUT_S)
    watch = BrokerWatch(
        lambda: _own_metadata(consumer),
        who=who,
        bootstrap=bootstrap,
        interval_s=interval_s,
        timeout_s=timeout_s,
    )
    watch.start()
    return watch
