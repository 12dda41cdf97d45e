"""The trainer stream for a plain, synchronous training loop: ``for batch in stream:``.

::

    with SyncStream(kafka, layout, StreamOptions(run_id="r1"), batch_size=16) as stream:
        for batch in stream:
            train(batch)                                  # blocking: no event loop in sight
            stream.publish_policy_version(stream.policy_version + 1)
            stream.commit()                               # these groups never come again

Most trainer driver loops are synchronous. A ``SyncStream`` is a ``GroupStream`` driven by its
own event loop (``asyncio.Runner``, uvloop when installed, as every command), so it keeps every
guarantee of the async stream: whole groups, acknowledged only by ``commit()`` (or, with
``commit="on_next"``, when the next batch is asked for), exact resume per run after a crash.
The loop runs only inside its calls: between them nothing reads Kafka (the stream has no
consumer group, so no heartbeat is missed while the trainer computes). Use it from plain code;
in async code use ``open_stream`` (a SyncStream refuses to start inside a running loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Self

from gymstream.eventloop import loop_factory
from gymstream.kafka.topics import TopicLayout
from gymstream.settings import KafkaSettings
from gymstream.trainer.grouping import Group
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.selection import StreamStats
from gymstream.trainer.stream import Checkpoint, GroupStream
from gymstream.wire.records import StreamProgress

__all__ = ["SyncStream"]


class SyncStream:
    """A ``GroupStream`` with blocking methods; iterating yields batches of ``batch_size``.

    Iteration stops when every run of the stream is complete (a batch may then be shorter).
    ``event_loop`` is the loop choice (``auto``, ``uvloop`` or ``asyncio``: the
    ``GYMSTREAM_EVENT_LOOP`` setting).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        layout: TopicLayout,
        options: StreamOptions,
        *,
        batch_size: int = 1,
        resume_from: Checkpoint | None = None,
        event_loop: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, not {batch_size}")
        self.batch_size = batch_size
        self.stream = GroupStream(kafka, layout, options, resume_from=resume_from)
        self._runner = asyncio.Runner(loop_factory=loop_factory(event_loop))

    # --- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop running: as it should be
        else:
            raise RuntimeError("SyncStream inside a running event loop: use open_stream there")
        try:
            self._runner.run(self.stream.__aenter__())
        except BaseException:
            self._runner.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        """Save drops since the last commit (on a clean exit) and close; handed units stay
        unacknowledged."""
        try:
            self._runner.run(self.stream.__aexit__(exc_type, exc, tb))
        finally:
            self._runner.close()

    # --- what the trainer calls ----------------------------------------------------------
    def __iter__(self) -> Iterator[list[Group]]:
        while batch := self.next_batch(self.batch_size):
            yield batch

    def next_batch(self, n: int, timeout_s: float | None = None) -> list[Group]:
        """Up to ``n`` units: fewer only when the stream finished or ``timeout_s`` passed."""
        return self._runner.run(self.stream.next_batch(n, timeout_s))

    def next_group(self, timeout_s: float | None = None) -> Group | None:
        """The next unit; None when the stream is finished or ``timeout_s`` passed first."""
        return self._runner.run(self.stream.next_group(timeout_s))

    def commit(self, units: Iterable[Group] | None = None) -> list[StreamProgress]:
        """Acknowledge the handed ``units`` (default: all); every run's position, saved."""
        return self._runner.run(self.stream.commit(units))

    def set_policy_version(self, version: int) -> None:
        self.stream.set_policy_version(version)

    def publish_policy_version(self, version: int) -> None:
        """Set the version and publish it for workers."""
        self._runner.run(self.stream.publish_policy_version(version))

    @property
    def policy_version(self) -> int | None:
        return self.stream.policy_version

    @property
    def stats(self) -> StreamStats:
        return self.stream.stats

    @property
    def finished(self) -> bool:
        return self.stream.finished

    @property
    def handed(self) -> list[Group]:
        return self.stream.handed

    @property
    def run_ids(self) -> list[str]:
        return self.stream.run_ids
