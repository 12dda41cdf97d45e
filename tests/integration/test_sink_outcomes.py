"""The sink against a real broker: which file a rollout's outcome ends in."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from fixtures.messages import failure_message, result_message
from fixtures.topics import end_offsets, make_producer, wait_until

from gymstream.kafka.topics import TopicLayout, apply_topics, load_layout
from gymstream.nemo_gym.outputs.files import OutputPaths
from gymstream.produce.producer import publish_manifest
from gymstream.settings import KafkaSettings
from gymstream.sink.ledger import SinkReport
from gymstream.sink.loop import run_sink
from gymstream.wire.codec import ENCODER
from gymstream.wire.messages import FailureMessage, ResultMessage
from gymstream.wire.records import RunManifest

pytestmark = pytest.mark.kafka

RUN = "r1"


async def publish(
    kafka: KafkaSettings, layout: TopicLayout, *messages: ResultMessage | FailureMessage
) -> None:
    producer = make_producer(kafka.bootstrap)
    await producer.start()
    try:
        for message in messages:
            topic = layout.results if isinstance(message, ResultMessage) else layout.failures
            await (await producer.send(topic, ENCODER.encode(message)))
        manifest = RunManifest(run_id=RUN, state="produced", expected={"a": 2})
        await publish_manifest(producer, layout, manifest)
    finally:
        await producer.stop()


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_a_late_success_moves_the_stale_failure_to_the_history_file(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A stale failure (a worker past its deadline) is written, then another worker's success
    of the same rollout arrives: the rollout ends in OUT.jsonl only, its failure in history."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    layout = load_layout(prefix=f"p{uuid.uuid4().hex[:10]}")
    await apply_topics(kafka.client_options(), layout, [])
    paths = OutputPaths(tmp_path / "out.jsonl")
    await publish(kafka, layout, failure_message(0, row={"t": 0}))

    stop = asyncio.Event()

    def stop_when_written(report: SinkReport) -> None:
        if report.accounted >= 1:
            stop.set()

    first = await asyncio.wait_for(
        run_sink(kafka, layout, paths, RUN, stop=stop, on_progress=stop_when_written), 60
    )
    assert (first.accounted, len(rows(paths.failures))) == (1, 1)

    await publish(kafka, layout, result_message(0), result_message(1))
    second = await asyncio.wait_for(run_sink(kafka, layout, paths, RUN), 60)

    assert second.complete
    assert sorted((r["task"], r["rollout"]) for r in rows(paths.output)) == [(0, 0), (1, 0)]
    assert rows(paths.failures) == []
    [moved] = rows(paths.failures_history)
    assert (moved["_ng_task_index"], moved["_ng_failure_class"]) == (0, "model_unavailable")
    assert second.superseded == 1


async def test_a_new_output_of_a_finished_run_is_rebuilt_from_the_topics(
    kafka_bootstrap: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The run's sink group has committed everything; a sink on a new path used to wait at
    0 of 2 forever. It reads what the topics retain from the start; where retention deleted
    records it says so."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    layout = load_layout(prefix=f"p{uuid.uuid4().hex[:10]}")
    await apply_topics(kafka.client_options(), layout, [])
    await publish(kafka, layout, result_message(0), result_message(1))
    first = OutputPaths(tmp_path / "a" / "out.jsonl")
    first.output.parent.mkdir()
    assert (await asyncio.wait_for(run_sink(kafka, layout, first, RUN), 60)).complete

    again = OutputPaths(tmp_path / "b" / "out.jsonl")
    again.output.parent.mkdir()
    report = await asyncio.wait_for(run_sink(kafka, layout, again, RUN), 60)
    assert report.complete
    assert sorted(r["task"] for r in rows(again.output)) == [0, 1]

    # retention deleted the first records of every results partition: said plainly
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        ends = await end_offsets(kafka_bootstrap, layout.results)
        await admin.delete_records(
            {TopicPartition(layout.results, p): RecordsToDelete(n) for p, n in ends.items() if n}
        )
    finally:
        await admin.close()
    gone = OutputPaths(tmp_path / "c" / "out.jsonl")
    gone.output.parent.mkdir()
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="gymstream.sink.rebuild")
    task = asyncio.ensure_future(run_sink(kafka, layout, gone, RUN, stop=stop))
    await wait_until(
        lambda: any("retention has deleted" in r.getMessage() for r in caplog.records),
        30,
        "the retention warning",
    )
    stop.set()
    partial = await asyncio.wait_for(task, 30)
    assert not partial.complete
    assert rows(gone.output) == []
