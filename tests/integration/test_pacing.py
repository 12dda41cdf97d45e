"""Pacing: the producer stays at most N groups ahead of the trainer (back-pressure)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from fixtures.pipeline import AGENT_ONE, single_tool_input
from fixtures.topics import read_all, wait_until

from gymstream.kafka.topics import apply_topics, load_layout
from gymstream.produce.producer import ProduceOptions, produce
from gymstream.runs.pacing import Pacer
from gymstream.settings import KafkaSettings

pytestmark = pytest.mark.kafka


async def test_producer_waits_for_the_trainer(kafka_bootstrap: str, tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    layout = load_layout(prefix=f"g{uuid.uuid4().hex[:10]}")
    await apply_topics(kafka.client_options(), layout, [AGENT_ONE])
    pacer = Pacer(max_ahead=2)
    options = ProduceOptions(
        input_path=single_tool_input(tmp_path / "in.jsonl", rows=5),
        run_id="paced",
        known_agents={AGENT_ONE},
        num_repeats=3,
        pacer=pacer,
    )
    producing = asyncio.create_task(produce(kafka, layout, options))
    topic = layout.tasks(AGENT_ONE)

    async def published() -> int:
        return len(await read_all(kafka_bootstrap, topic))

    try:
        await wait_until(lambda: _equals(published, 6), 30, "2 groups of 3 published")
        assert not producing.done()  # blocked: 2 groups ahead of a trainer that consumed none
        assert await published() == 6

        pacer.update(1)  # the trainer is done with one group: one more may go
        await wait_until(lambda: _equals(published, 9), 30, "a third group")
        assert not producing.done()

        pacer.update(5)
        report = await asyncio.wait_for(producing, 30)
    finally:
        producing.cancel()
    assert report.published[AGENT_ONE] == 15
    assert await published() == 15


async def _equals(count, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await count() == expected
