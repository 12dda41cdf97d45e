"""gymstream.eventloop: GYMSTREAM_EVENT_LOOP (EventLoopSettings) picks the loop of every command."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from gymstream import eventloop
from gymstream.errors import ConfigError
from gymstream.settings import EventLoopSettings


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


@pytest.mark.parametrize(("choice", "expected"), [("auto", uvloop.Loop), ("uvloop", uvloop.Loop)])
def test_uvloop_by_default_and_on_request(
    monkeypatch: pytest.MonkeyPatch, choice: str, expected: type
) -> None:
    monkeypatch.setenv(eventloop.ENV_VAR, choice)
    chosen = EventLoopSettings().event_loop
    assert eventloop.loop_name(chosen) == "uvloop"
    assert issubclass(eventloop.run(_loop_type(), chosen), expected)


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV_VAR, "asyncio")
    chosen = EventLoopSettings().event_loop
    assert eventloop.loop_name(chosen) == "asyncio"
    assert not issubclass(eventloop.run(_loop_type(), chosen), uvloop.Loop)


def test_unknown_choice_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV_VAR, "tokio")
    with pytest.raises(ConfigError, match="GYMSTREAM_EVENT_LOOP='tokio'"):
        eventloop.loop_factory(EventLoopSettings().event_loop)


def test_missing_uvloop_falls_back_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "uvloop", None)  # import now fails
    assert eventloop.loop_factory("auto") is None
    with pytest.raises(ConfigError, match="pip install uvloop"):
        eventloop.loop_factory("uvloop")


async def test_periodic_steps_until_stopped() -> None:
    steps: list[int] = []
    enough = asyncio.Event()

    async def step() -> None:
        steps.append(len(steps))
        if len(steps) >= 3:
            enough.set()

    ticker = eventloop.Periodic(0.001, step)
    ticker.start()
    await asyncio.wait_for(enough.wait(), 10)  # progress, not a sleep
    await ticker.stop()
    seen = len(steps)
    await asyncio.sleep(0.01)
    assert seen >= 3
    assert len(steps) == seen  # stopped: no step after stop()
    await ticker.stop()  # a second stop is harmless
