"""gymstream.eventloop: GYMSTREAM_EVENT_LOOP picks the loop every command runs on."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from gymstream import eventloop
from gymstream.errors import ConfigError


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


@pytest.mark.parametrize(("choice", "expected"), [("auto", uvloop.Loop), ("uvloop", uvloop.Loop)])
def test_uvloop_by_default_and_on_request(
    monkeypatch: pytest.MonkeyPatch, choice: str, expected: type
) -> None:
    monkeypatch.setenv(eventloop.ENV_VAR, choice)
    assert eventloop.loop_name() == "uvloop"
    assert issubclass(eventloop.run(_loop_type()), expected)


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV_VAR, "asyncio")
    assert eventloop.loop_name() == "asyncio"
    assert not issubclass(eventloop.run(_loop_type()), uvloop.Loop)


def test_unknown_choice_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV_VAR, "tokio")
    with pytest.raises(ConfigError, match="GYMSTREAM_EVENT_LOOP='tokio'"):
        eventloop.loop_factory()


def test_missing_uvloop_falls_back_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "uvloop", None)  # import now fails
    monkeypatch.setenv(eventloop.ENV_VAR, "auto")
    assert eventloop.loop_factory() is None
    monkeypatch.setenv(eventloop.ENV_VAR, "uvloop")
    with pytest.raises(ConfigError, match="pip install uvloop"):
        eventloop.loop_factory()
