"""Pacing: keep a producer at most N units ahead of a trainer stream's committed progress.

A trainer stream writes its ``StreamProgress`` (``progress/<run id>/<consumer>``) at every
commit; its ``closed_units`` is the count of units the trainer is done with. ``open_pacer``
follows that record and a ``Pacer`` turns it into back-pressure on the producer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gymstream.errors import ConfigError
from gymstream.kafka.topics import TopicLayout
from gymstream.runs.tail import Changes, RunsTail
from gymstream.settings import KafkaSettings
from gymstream.wire.keys import progress_key

__all__ = ["Pacer", "open_pacer"]


class Pacer:
    """Keeps a producer at most ``max_ahead`` units ahead of the trainer.

    ``consumed`` is the number of units the trainer is done with (acknowledged or dropped, from
    its ``StreamProgress``); ``update`` sets it (``open_pacer`` does so from Kafka; tests and other
    sources may call it directly). Units are groups (or rollouts, for a rollout-mode stream).
    """

    def __init__(self, max_ahead: int, consumed: int = 0) -> None:
        if max_ahead < 1:
            raise ConfigError(f"max_ahead must be at least 1, not {max_ahead}")
        self.max_ahead = max_ahead
        self.consumed = consumed
        self.changes = Changes()

    def update(self, consumed: int) -> None:
        if consumed > self.consumed:
            self.consumed = consumed
            self.changes.notify()

    def has_room(self, produced: int) -> bool:
        """True when a producer that has published ``produced`` units may publish one more."""
        return produced - self.consumed < self.max_ahead

    async def wait_for_room(self, produced: int, timeout_s: float | None = None) -> int:
        """Wait until ``has_room(produced)``; returns ``consumed``. TimeoutError after timeout_s;
        the reader's error when following the trainer's progress failed."""
        await self.changes.wait_until(lambda: self.has_room(produced), timeout_s)
        return self.consumed


@contextlib.asynccontextmanager
async def open_pacer(
    kafka: KafkaSettings,
    layout: TopicLayout,
    run_id: str,
    *,
    max_ahead: int,
    consumer: str = "trainer",
) -> AsyncIterator[Pacer]:
    """A ``Pacer`` following the progress of the trainer stream named ``consumer``."""
    pacer = Pacer(max_ahead)

    def take(_: object = None) -> None:
        progress = tail.progress(run_id, consumer)
        if progress is not None:
            pacer.update(progress.closed_units)

    async with RunsTail(kafka, layout, [progress_key(run_id, consumer)]) as tail:
        await tail.read_to_end()
        take()
        tail.follow(take, on_error=pacer.changes.fail)
        yield pacer
