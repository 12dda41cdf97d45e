"""A stage's lifecycle: its clients and watches start in one order and stop in the reverse one.

Every stage (the worker, the sink, the trainer stream, the runs tail) builds Kafka clients,
starts them, watches the broker and must close all of it whatever fails, a start included. A
``Stage`` is that, once: each ``producer``/``consumer``/``start``/``watch_*``/``on_exit`` call
registers its part's stop on one ``contextlib.AsyncExitStack`` *before* starting it (a start
that fails, with no broker, still closes the client), and closing the stage stops every part in
the reverse order, exactly once, on success, error or cancellation. Quix Streams'
``Application.run`` (one ExitStack) is the model. Setup errors a user can fix (a missing topic)
come out as one ``ConfigError`` line.

::

    async with Stage(kafka, who="sink", stop=stop) as stage:
        producer = await stage.producer()
        consumer = await stage.consumer(group_id="g", topics=["t"], missing_topic="create t")
        stage.watch_broker(consumer)
        stage.on_exit(settle)   # first on the way out: before the watch and clients stop
        await stage.run_until_stopped(work())

``stop`` (SIGTERM/SIGINT) ends the work; ``drain`` (a graceful stop, once nothing more is being
published) is the stage's to honour at its first empty poll (``draining``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, Self, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import UnknownTopicOrPartitionError

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, build_producer
from gymstream.settings import KafkaSettings
from gymstream.stage.broker import BrokerWatch, watch_consumer
from gymstream.stage.stall import StallWatch

__all__ = ["Part", "Stage"]


class Part(Protocol):
    """Anything a stage starts and stops (a ``RunsTail``, ``LiveVersions``, a publisher)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


P = TypeVar("P", bound=Part)


class Stage:
    """One stage's clients, watches and stop/drain signals (see the module docstring).

    Use it as an async context manager, or call its methods and ``aclose()`` in a ``finally``.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        who: str,
        stop: asyncio.Event | None = None,
        drain: asyncio.Event | None = None,
    ) -> None:
        self.kafka = kafka
        self.who = who
        self.stop = stop or asyncio.Event()
        self.drain = drain
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Stop everything started, in reverse order; safe to call again (a no-op then)."""
        await self._stack.aclose()

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    @property
    def draining(self) -> bool:
        """A graceful stop was asked for: end at the first poll that brings nothing."""
        return self.drain is not None and self.drain.is_set()

    # --- parts, each stopped in reverse order of start -----------------------------------
    async def producer(self, **overrides: Any) -> AIOKafkaProducer:
        """A started producer (``kafka.clients.build_producer``)."""
        producer = build_producer(self.kafka, **overrides)
        self._stack.push_async_callback(producer.stop)
        await producer.start()
        return producer

    async def consumer(
        self,
        *,
        group_id: str | None,
        topics: Iterable[str] = (),
        listener: Callable[[AIOKafkaConsumer], ConsumerRebalanceListener] | None = None,
        missing_topic: str | None = None,
        **overrides: Any,
    ) -> AIOKafkaConsumer:
        """A started consumer, subscribed to ``topics`` (if any) with ``listener(consumer)``.

        ``missing_topic``: the ConfigError message when a subscribed topic does not exist."""
        consumer = build_consumer(self.kafka, group_id=group_id, **overrides)
        if topics:
            rebalance = None if listener is None else listener(consumer)
            consumer.subscribe(list(topics), listener=rebalance)
        self._stack.push_async_callback(consumer.stop)
        try:
            await consumer.start()
        except UnknownTopicOrPartitionError as exc:
            if missing_topic is None:
                raise
            raise ConfigError(missing_topic) from exc
        return consumer

    async def start(self, part: P) -> P:
        """``part`` started (its ``stop`` runs on the way out, even when ``start`` fails)."""
        self._stack.push_async_callback(part.stop)
        await part.start()
        return part

    def watch_broker(self, consumer: AIOKafkaConsumer) -> BrokerWatch:
        """A started ``BrokerWatch`` on ``consumer``'s metadata, logging as ``who``."""
        watch = watch_consumer(
            consumer,
            who=self.who,
            bootstrap=self.kafka.bootstrap,
            interval_s=self.kafka.watch_interval_s,
        )
        self._stack.push_async_callback(watch.stop)
        return watch

    def watch_stall(self, limit_s: float, on_stall: Callable[[float], None]) -> StallWatch:
        """A started ``StallWatch``: ``on_stall(seconds)`` after a freeze over ``limit_s``."""
        watch = StallWatch(limit_s, on_stall)
        watch.start()
        self._stack.push_async_callback(watch.stop)
        return watch

    def on_exit(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Await ``callback()`` on the way out, before everything registered earlier stops
        (the stage's settle-and-commit: its clients are still open then)."""
        self._stack.push_async_callback(callback)

    # --- the work ------------------------------------------------------------------------
    async def run_until_stopped(self, work: Awaitable[None]) -> None:
        """Run ``work`` until it ends or ``stop`` is set (then it is cancelled wherever it
        waits); its error, if it failed, is raised."""
        task = asyncio.ensure_future(work)
        stop_wait = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
        finally:
            stop_wait.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
