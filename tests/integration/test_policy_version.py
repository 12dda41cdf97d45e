"""Workers stamp rollouts with the policy version a trainer publishes live."""

from __future__ import annotations

import json
import uuid

import pytest
from fixtures.pipeline import AGENT_ONE, ENVS, in_process_worker
from fixtures.topics import make_producer, read_all, wait_until

from gymstream.kafka.topics import apply_topics, load_layout
from gymstream.runs.policy import publish_policy_version
from gymstream.settings import KafkaSettings, WorkerSettings
from gymstream.wire.codec import DECODE_RESULT, ENCODER
from gymstream.wire.messages import TaskMessage

pytestmark = pytest.mark.kafka


async def test_worker_follows_the_trainers_policy_version(kafka_bootstrap: str) -> None:

    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    layout = load_layout(prefix=f"v{uuid.uuid4().hex[:10]}")
    await apply_topics(kafka.client_options(), layout, [AGENT_ONE])
    row = json.loads(
        (ENVS / "example_single_tool_call" / "data" / "example.jsonl").read_text().splitlines()[0]
    )

    def task(index: int, version: int | None = None) -> bytes:
        message = TaskMessage(
            run_id="pv",
            rollout_id=f"pv/{AGENT_ONE}/{index}/0",
            agent=AGENT_ONE,
            task_index=index,
            rollout_index=0,
            row=row,
            policy_version=version,
        )
        return ENCODER.encode(message)

    async def results() -> dict[int, int | None]:
        found = [DECODE_RESULT.decode(v) for v in await read_all(kafka_bootstrap, layout.results)]
        return {r.task_index: r.policy_version for r in found}

    await publish_policy_version(kafka, layout, "pv", 7)
    async with in_process_worker(kafka, layout, WorkerSettings(concurrency=4, policy_version=1)):
        producer = make_producer(kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(layout.tasks(AGENT_ONE), task(0, version=3))
            await wait_until(lambda: _has(results, 0), 60, "the first result")
            await publish_policy_version(kafka, layout, "pv", 8)

            async def second_stamped_8() -> bool:
                await producer.send_and_wait(layout.tasks(AGENT_ONE), task(len(await results())))
                return 8 in (await results()).values()

            await wait_until(second_stamped_8, 60, "a rollout stamped with version 8")
        finally:
            await producer.stop()
    versions = await results()
    assert versions[0] == 7  # the live version wins over the task's (3) and the worker's (1)
    assert set(versions.values()) <= {7, 8}


async def _has(results, index: int) -> bool:  # type: ignore[no-untyped-def]
    return index in await results()
