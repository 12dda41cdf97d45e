"""BrokerWatch: one line when Kafka stops answering, one when it is back, none per retry."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from gymstream.stage.broker import BrokerWatch


def test_an_outage_is_said_once_when_it_starts_and_once_with_its_length_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = [True, False, False, False, True, True, False, True]

    async def probe() -> None:
        if not answers.pop(0):
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    watch = BrokerWatch(probe, who="sink", bootstrap="b:1", interval_s=0.01, timeout_s=1)
    caplog.set_level(logging.WARNING, logger="gymstream.stage.broker")

    async def main() -> list[bool]:
        return [await watch.check() for _ in range(8)]

    assert asyncio.run(main()) == [True, False, False, False, True, True, False, True]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert "sink: Kafka at b:1 stopped answering (KafkaConnectionError: Unable" in lines[0]
    assert "answers again, after" in lines[1]
    assert watch.outages == 2


def test_a_probe_that_hangs_is_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    async def probe() -> None:
        await asyncio.sleep(10)

    watch = BrokerWatch(probe, who="worker a", bootstrap="b:1", interval_s=0.01, timeout_s=0.05)
    caplog.set_level(logging.WARNING, logger="gymstream.stage.broker")
    assert asyncio.run(watch.check()) is False
    assert "no answer within" in caplog.records[0].getMessage()
