"""The rollout client for synchronous code: ``for row, result in client.run(rows):``.

::

    with SyncRolloutClient(config) as client:
        for row, result in client.run(rows, policy_version=step):
            ...

A ``RolloutClient`` driven by its own event loop in a background thread (uvloop when installed,
as every command). Unlike ``SyncStream``, the loop keeps running between calls: the client's
own workers (in-process by default) go on serving, heartbeating and committing while the
caller trains. Every guarantee is the async client's; leaving a run's iterator early closes it
(the run is drained, ``run.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar

from gymstream.client.run import RolloutClient
from gymstream.eventloop import loop_factory

__all__ = ["SyncRolloutClient"]

T = TypeVar("T")


class SyncRolloutClient:
    """Blocking methods over a ``RolloutClient`` (same arguments); use it as a context manager."""

    def __init__(self, *args: Any, event_loop: str = "auto", **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs
        factory = loop_factory(event_loop)
        self._loop = factory() if factory is not None else asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="gymstream-client", daemon=True
        )
        self._client: RolloutClient | None = None

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.submit(coroutine).result()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coroutine`` on the client's loop (e.g. one using ``self.client``)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    @property
    def client(self) -> RolloutClient:
        if self._client is None:
            raise RuntimeError("SyncRolloutClient used outside its `with` block")
        return self._client

    def __enter__(self) -> Self:
        self._thread.start()

        async def build() -> RolloutClient:  # built in its loop: its events belong there
            client = RolloutClient(*self._args, **self._kwargs)
            await client.start()
            return client

        try:
            self._client = self._call(build())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if self._client is not None:
                self._call(self._client.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def run(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        run_id: str | None = None,
        policy_version: int | None = None,
        route_failures_to_sidecar: bool = False,
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """``RolloutClient.run``, blocking: yields ``(row, result)`` as each completes."""
        outcomes = self.client.run(
            rows,
            run_id=run_id,
            policy_version=policy_version,
            route_failures_to_sidecar=route_failures_to_sidecar,
        )
        try:
            while True:
                try:
                    yield self._call(_anext(outcomes))
                except StopAsyncIteration:
                    return
        finally:
            with _ignore_closed_loop():
                self._call(_aclose(outcomes))

    def run_all(
        self, rows: Iterable[Mapping[str, Any]], **options: Any
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every ``(row, result)`` of one run, in completion order."""
        return list(self.run(rows, **options))


async def _anext(outcomes: AsyncIterator[T]) -> T:
    return await anext(outcomes)


async def _aclose(outcomes: AsyncGenerator[Any, None]) -> None:
    await outcomes.aclose()


class _ignore_closed_loop:
    """Closing a run after the loop stopped (interpreter exit) has nothing left to do."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> bool:
        return exc_type is not None and issubclass(
            exc_type, RuntimeError | concurrent.futures.CancelledError
        )
