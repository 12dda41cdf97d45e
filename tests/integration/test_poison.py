"""Poison messages on a task topic become typed failures with their location; work goes on."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fixtures.pipeline import AGENT_ONE, ENVS, in_process_worker
from fixtures.topics import make_producer, read_all, wait_until

from gymstream.kafka.topics import TopicLayout, apply_topics, load_layout
from gymstream.settings import KafkaSettings, WorkerSettings
from gymstream.wire.codec import DECODE_FAILURE, DECODE_RESULT, ENCODER
from gymstream.wire.messages import TaskMessage

pytestmark = pytest.mark.kafka


async def test_poison_messages_do_not_block_the_partition(
    kafka_bootstrap: str, tmp_path: Path
) -> None:

    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    layout = load_layout(prefix=f"p{uuid.uuid4().hex[:10]}")
    await apply_topics(kafka.client_options(), layout, [AGENT_ONE])
    row = json.loads(
        (ENVS / "example_single_tool_call" / "data" / "example.jsonl").read_text().splitlines()[0]
    )
    good = TaskMessage(
        run_id="p",
        rollout_id=f"p/{AGENT_ONE}/0/0",
        agent=AGENT_ONE,
        task_index=0,
        rollout_index=0,
        row=row,
    )
    wrong_agent = msgspec.structs.replace(
        good, rollout_id="p/other/1/0", agent="other", task_index=1
    )
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        topic = layout.tasks(AGENT_ONE)
        # all on partition 0, poison first: the good task behind them must still be served
        for value in (
            b"\xff\xfe not json",
            b'{"run_id": 5}',
            ENCODER.encode(wrong_agent),
            ENCODER.encode(good),
        ):
            await (await producer.send(topic, value, partition=0))
    finally:
        await producer.stop()

    settings = WorkerSettings(concurrency=8, commit_interval_s=0.05)
    async with in_process_worker(kafka, layout, settings) as worker:

        async def failures_and_result() -> bool:
            return (
                len(await read_all(kafka_bootstrap, layout.failures)) >= 3
                and len(await read_all(kafka_bootstrap, layout.results)) >= 1
            )

        await wait_until(failures_and_result, 60, "3 failures and 1 result")
    stats = worker.stats
    failures = [DECODE_FAILURE.decode(v) for v in await read_all(kafka_bootstrap, layout.failures)]
    assert sorted(f.failure_class for f in failures) == [
        "poison_message",
        "poison_message",
        "unknown_agent",
    ]
    for failure in failures:
        assert failure.topic == layout.tasks(AGENT_ONE)
        assert failure.partition == 0
        assert failure.terminal
    assert sorted(f.offset or 0 for f in failures) == [0, 1, 2]
    assert all(f.offset is not None for f in failures)
    results = [DECODE_RESULT.decode(v) for v in await read_all(kafka_bootstrap, layout.results)]
    assert [r.rollout_id for r in results] == [good.rollout_id]
    assert stats.succeeded == 1
    assert stats.commits >= 1


async def _tasks_on_partition_0(
    kafka_bootstrap: str, rows: list[dict[str, object]]
) -> tuple[KafkaSettings, TopicLayout, list[TaskMessage]]:
    """Fresh topics, and one task per row (task_index = position) on partition 0, in order."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    layout = load_layout(prefix=f"p{uuid.uuid4().hex[:10]}")
    await apply_topics(kafka.client_options(), layout, [AGENT_ONE])
    tasks = [
        TaskMessage(
            run_id="p",
            rollout_id=f"p/{AGENT_ONE}/{i}/0",
            agent=AGENT_ONE,
            task_index=i,
            rollout_index=0,
            row=row,
        )
        for i, row in enumerate(rows)
    ]
    producer = make_producer(kafka_bootstrap, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        for task in tasks:
            await (await producer.send(layout.tasks(AGENT_ONE), ENCODER.encode(task), partition=0))
    finally:
        await producer.stop()
    return kafka, layout, tasks


def _example_row() -> dict[str, object]:
    text = (ENVS / "example_single_tool_call" / "data" / "example.jsonl").read_text()
    row: dict[str, object] = json.loads(text.splitlines()[0])
    return row


async def _results_once_done(kafka_bootstrap: str, results_topic: str, n: int) -> list[Any]:
    async def done() -> bool:
        return len(await read_all(kafka_bootstrap, results_topic)) >= n

    await wait_until(done, 60, f"{n} results")
    return [DECODE_RESULT.decode(v) for v in await read_all(kafka_bootstrap, results_topic)]


async def test_a_task_larger_than_the_fetch_size_is_served(kafka_bootstrap: str) -> None:
    """The worker fetches 1 MiB per partition; Kafka still hands over a bigger first batch."""
    from gymstream.kafka.clients import FETCH_BYTES_PER_PARTITION

    row = _example_row()
    big_row = {**row, "context": "x" * (3 * FETCH_BYTES_PER_PARTITION)}
    # the big one first, on the same partition: it must not block the one behind it
    kafka, layout, tasks = await _tasks_on_partition_0(kafka_bootstrap, [big_row, row])
    settings = WorkerSettings(concurrency=8, commit_interval_s=0.05)
    async with in_process_worker(kafka, layout, settings):
        results = await _results_once_done(kafka_bootstrap, layout.results, 2)
    assert sorted(r.rollout_id for r in results) == sorted(t.rollout_id for t in tasks)
    big = next(r for r in results if r.task_index == 0)
    assert len(json.loads(bytes(big.output))["context"]) == 3 * FETCH_BYTES_PER_PARTITION
    assert not await read_all(kafka_bootstrap, layout.failures)


async def test_a_full_worker_polling_to_stay_in_its_group_loses_and_doubles_nothing(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every slot held past IDLE_POLL_S: the worker pauses, polls empty, resumes (aiokafka drops
    the prefetched tasks then); each task must still be served once."""
    from aiokafka import AIOKafkaConsumer

    from gymstream.worker import loop as worker_module

    monkeypatch.setattr(worker_module, "IDLE_POLL_S", 0.01)
    pauses: list[int] = []
    real_pause = AIOKafkaConsumer.pause

    def counting_pause(self: AIOKafkaConsumer, *partitions: object) -> None:
        pauses.append(len(partitions))
        real_pause(self, *partitions)

    monkeypatch.setattr(AIOKafkaConsumer, "pause", counting_pause)
    # one partition: every keepalive poll drops its prefetched tail
    kafka, layout, tasks = await _tasks_on_partition_0(kafka_bootstrap, [_example_row()] * 12)
    settings = WorkerSettings(concurrency=2, commit_interval_s=0.05)
    async with in_process_worker(kafka, layout, settings, model_latency_ms=60) as worker:
        results = await _results_once_done(kafka_bootstrap, layout.results, len(tasks))
    assert sorted(r.task_index for r in results) == list(range(len(tasks)))
    assert worker.stats.taken == len(tasks)
    assert len(pauses) > 2  # the keepalive path ran (the last pause is the shutdown's)
