"""Stage: parts start in one order and stop in the reverse one, exactly once, whatever fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError

from gymstream.errors import ConfigError
from gymstream.settings import KafkaSettings
from gymstream.stage import runtime
from gymstream.stage.runtime import Stage


class Part:
    def __init__(self, name: str, events: list[str], *, fails: BaseException | None = None):
        self.name = name
        self.events = events
        self.fails = fails

    async def start(self) -> None:
        self.events.append(f"start {self.name}")
        if self.fails is not None:
            raise self.fails

    async def stop(self) -> None:
        self.events.append(f"stop {self.name}")


class Client(Part):
    """A stand-in for an aiokafka client: what the stage calls on it."""

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.events.append(f"subscribe {self.name} {topics} {type(listener).__name__}")


FAILING: dict[str, BaseException] = {}
"""Which fake client's start fails, and how (set by a test, cleared by the fixture)."""


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    FAILING.clear()

    def client(name: str) -> Any:
        return lambda kafka, **kw: Client(name, seen, fails=FAILING.get(name))

    monkeypatch.setattr(runtime, "build_producer", client("producer"))
    monkeypatch.setattr(runtime, "build_consumer", client("consumer"))
    return seen


async def test_parts_stop_in_reverse_order_of_start_and_on_exit_runs_first(
    events: list[str],
) -> None:
    async with Stage(KafkaSettings(), who="t") as stage:
        await stage.producer()
        await stage.consumer(group_id="g", topics=["t"], listener=lambda c: Part("l", events))
        await stage.start(Part("tail", events))

        async def settle() -> None:
            events.append("settle")

        stage.on_exit(settle)
        events.append("work")
    assert events == [
        "start producer",
        "subscribe consumer ['t'] Part",
        "start consumer",
        "start tail",
        "work",
        "settle",
        "stop tail",
        "stop consumer",
        "stop producer",
    ]
    await stage.aclose()  # again: nothing runs twice
    assert events.count("stop producer") == 1


async def test_a_part_that_fails_to_start_is_stopped_with_everything_before_it(
    events: list[str],
) -> None:

    async def run() -> None:
        async with Stage(KafkaSettings(), who="t") as stage:
            await stage.producer()
            await stage.start(Part("tail", events, fails=KafkaConnectionError("no broker")))
            events.append("never")

    with pytest.raises(KafkaConnectionError):
        await run()
    assert events == ["start producer", "start tail", "stop tail", "stop producer"]


async def test_a_missing_topic_is_one_config_error_and_the_consumer_is_closed(
    events: list[str],
) -> None:
    FAILING["consumer"] = UnknownTopicOrPartitionError()

    async def run() -> None:
        async with Stage(KafkaSettings(), who="t") as stage:
            await stage.consumer(group_id="g", topics=["t"], missing_topic="create topic t first")

    with pytest.raises(ConfigError, match="create topic t first"):
        await run()
    assert events[-2:] == ["start consumer", "stop consumer"]


async def test_the_work_is_cancelled_when_stop_is_set_and_its_error_is_raised() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    async with Stage(KafkaSettings(), who="t", stop=stop) as stage:
        asyncio.get_running_loop().call_soon(stop.set)
        await stage.run_until_stopped(forever())
    assert cancelled.is_set()

    async def fails() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await Stage(KafkaSettings(), who="t").run_until_stopped(fails())


def test_draining_is_false_without_a_drain_event_and_follows_it_with_one() -> None:
    assert Stage(KafkaSettings(), who="t").draining is False
    drain = asyncio.Event()
    stage = Stage(KafkaSettings(), who="t", drain=drain)
    assert stage.draining is False
    drain.set()
    assert stage.draining is True
