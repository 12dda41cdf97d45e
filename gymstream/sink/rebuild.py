"""Rebuilding an output from the results topic: a sink whose files hold none of its run reads
from the start of what the topics retain, whatever its group committed.

The sink group of a run commits its offsets once rows are on disk; a sink pointed at a new path,
or at an output that was deleted, found those offsets committed and waited forever at ``0 of N``.
A sink that starts with no row of the run in its files (``rebuild``) seeks every partition it is
assigned to the beginning, once, and says plainly when retention has already deleted part of a
partition: those rollouts cannot come back from Kafka (a resume of the run redoes them).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

__all__ = ["FromTheStart"]

log = logging.getLogger("gymstream.sink.rebuild")


class FromTheStart(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Seek each newly assigned partition to its first retained offset, once (``rebuild``)."""

    def __init__(self, consumer: Any, *, rebuild: bool) -> None:
        self.consumer = consumer
        self.rebuild = rebuild
        self.seen: set[TopicPartition] = set()
        self.deleted: dict[TopicPartition, int] = {}
        """Per partition: how many offsets retention had deleted when the rebuild began."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if not self.rebuild:
            return
        new = sorted(set(assigned) - self.seen, key=lambda tp: (tp.topic, tp.partition))
        if not new:
            return
        self.seen.update(new)
        await self.consumer.seek_to_beginning(*new)
        starts: dict[TopicPartition, int] = await self.consumer.beginning_offsets(new)
        gone = {tp: start for tp, start in starts.items() if start > 0}
        if gone:
            self.deleted.update(gone)
            where = ", ".join(f"{tp.topic}/{tp.partition}: {n}" for tp, n in sorted(gone.items()))
            log.warning(
                "rebuilding the output from the topics, but retention has deleted their first "
                "records (%s offsets gone); the rollouts there cannot be rebuilt from Kafka: "
                "run `collect` (or `produce --output`) again with the same --run-id to redo "
                "what the output lacks",
                where,
            )
        else:
            log.info("rebuilding the output from the start of %d partitions", len(new))
