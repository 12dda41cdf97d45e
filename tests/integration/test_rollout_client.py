"""The rollout client against the real broker: rows in, (row, result) out, failures typed,
its own workers started when none serve an agent, nothing left behind when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fixtures.pipeline import AGENT_MULTI, AGENT_ONE, ENVS

from gymstream.client import RolloutClient, RolloutFailedError, SyncRolloutClient
from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, topic_partitions
from gymstream.kafka.topics import TopicLayout, load_layout
from gymstream.nemo_gym.config.agents import load_config
from gymstream.runs.tail import read_manifests
from gymstream.settings import (
    KafkaSettings,
    ModelSettings,
    RetrySettings,
    RolloutSettings,
    WorkerSettings,
)
from gymstream.testing.thread import ScriptedThread, start_scripted_in_thread

pytestmark = pytest.mark.kafka


@pytest.fixture
def model() -> Iterator[ScriptedThread]:
    server = start_scripted_in_thread()
    try:
        yield server
    finally:
        server.stop()


def _settings(url: str) -> RolloutSettings:
    return RolloutSettings(
        model=ModelSettings(base_url=url, name="scripted"),
        retry=RetrySettings(
            max_attempts=1, backoff_initial_s=0.05, backoff_max_s=0.1, outage_budget_s=0.2
        ),
        worker=WorkerSettings(commit_interval_s=0.1, shutdown_grace_s=5),
    )


def _rows(environment: str, agent: str, count: int) -> list[dict[str, Any]]:
    path = ENVS / environment / "data" / "example.jsonl"
    source = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = []
    for i in range(count):
        row = dict(source[i % len(source)], id=f"{environment}-{i}")
        row["agent_ref"] = {"type": "responses_api_agents", "name": agent}
        rows.append(row)
    return rows


def _kafka(bootstrap: str) -> tuple[KafkaSettings, TopicLayout]:
    return KafkaSettings(bootstrap=bootstrap), load_layout(prefix=f"t{uuid.uuid4().hex[:10]}c")


async def _lag(kafka: KafkaSettings, layout: TopicLayout, agent: str) -> int:
    """Tasks of ``agent`` its worker group has not committed past (0: nothing left behind)."""
    consumer = build_consumer(kafka, group_id=layout.worker_group(agent))
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, layout.tasks(agent))
        ends = await consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            committed = await consumer.committed(tp)
            lag += ends[tp] - (committed or 0)
        return lag
    finally:
        await consumer.stop()


async def _drained(kafka: KafkaSettings, layout: TopicLayout, agent: str) -> bool:
    """Whether the agent's worker group commits past every task (waits for its next commits:
    progress, bounded by a generous safety net)."""
    for _ in range(300):
        if await _lag(kafka, layout, agent) == 0:
            return True
        await asyncio.sleep(0.1)
    return False


async def _topics(kafka: KafkaSettings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_every_row_once_as_nemo_gyms_run_result(
    kafka_bootstrap: str, model: ScriptedThread, caplog: pytest.LogCaptureFixture
) -> None:
    kafka, layout = _kafka(kafka_bootstrap)
    rows = _rows("example_single_tool_call", AGENT_ONE, 6)
    rows += _rows("example_multi_step", AGENT_MULTI, 3)
    rows += [rows[0]]  # a repeat: same task, next rollout index
    caplog.set_level(logging.INFO, logger="gymstream.client")
    async with RolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=_settings(model.url)
    ) as client:
        got = [pair async for pair in client.run(rows, run_id="c1", policy_version=3)]
        assert client.own_workers == sorted([AGENT_ONE, AGENT_MULTI])
    assert "starting this client's own, in-process" in caplog.text
    assert sorted(map(id, (row for row, _ in got))) == sorted(map(id, rows))  # each row once
    for row, result in got:
        if row["agent_ref"]["name"] == AGENT_ONE:
            assert result["reward"] == 1.0  # the scripted model solves these
        assert isinstance(result["reward"], float)
        assert result["response"]["output"]  # the whole trajectory
        sent = result["responses_create_params"]  # the request as sent: the model named too
        assert sent == {**row["responses_create_params"], "model": "scripted"}
        assert not [k for k in result if k.startswith(("_ng_", "_gs_"))]
        assert "agent_ref" not in result
    [manifest] = [m for m in await read_manifests(kafka, layout) if m.run_id == "c1"]
    assert manifest.state == "produced"
    assert sum(manifest.expected.values()) == len(rows)


async def _exhaust(client: RolloutClient, rows: list[dict[str, Any]]) -> None:
    async with contextlib.aclosing(client.run(rows)) as outcomes:
        async for _ in outcomes:
            pass


async def test_failures_are_typed_rows_or_raised_and_nothing_stays_behind(
    kafka_bootstrap: str,
) -> None:
    kafka, layout = _kafka(kafka_bootstrap)
    failing = start_scripted_in_thread(error_rate=1.0)
    rows = _rows("example_single_tool_call", AGENT_ONE, 4)
    try:
        async with RolloutClient(
            load_config(), kafka=kafka, layout=layout, settings=_settings(failing.url)
        ) as client:
            routed = [p async for p in client.run(rows, route_failures_to_sidecar=True)]
            assert len(routed) == len(rows)
            for _, result in routed:
                assert result["_ng_failure_class"] == "model_http_5xx"
                assert result["_ng_failure_message"]
                assert "reward" not in result  # a failure is never a reward
            with pytest.raises(RolloutFailedError) as raised:
                await _exhaust(client, rows)
            assert raised.value.failure.failure_class == "model_http_5xx"
            assert 0 <= raised.value.position < len(rows)
            # the raised run was drained, then committed (the worker commits as it goes)
            assert await _drained(kafka, client.layout, AGENT_ONE)
            assert not client.layout.shared  # the client's own scope: docs/scopes.md
    finally:
        failing.stop()
    assert client.layout.tasks(AGENT_ONE) not in await _topics(kafka)  # dropped at close


async def test_a_bad_row_is_named_and_nothing_is_published(
    kafka_bootstrap: str, model: ScriptedThread
) -> None:
    kafka, layout = _kafka(kafka_bootstrap)
    rows = _rows("example_single_tool_call", AGENT_ONE, 3)
    rows[2] = {**rows[2], "agent_ref": {"name": "nobody"}}
    async with RolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=_settings(model.url)
    ) as client:
        with pytest.raises(ConfigError, match=r"^row 2: agent_ref"):
            await _exhaust(client, rows)
        assert client.own_workers == []  # nothing was published, nothing started
    assert not await read_manifests(kafka, layout)  # no run began


def test_sync_client_leaving_early_drains_the_run(
    kafka_bootstrap: str, model: ScriptedThread
) -> None:
    kafka, layout = _kafka(kafka_bootstrap)
    rows = _rows("example_single_tool_call", AGENT_ONE, 5)
    with SyncRolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=_settings(model.url)
    ) as client:
        assert len(client.run_all(rows)) == 5
        for _ in client.run(rows):
            break  # the rest is drained before the iterator closes
        scoped = client.client.layout
        assert client.submit(_drained(kafka, scoped, AGENT_ONE)).result()
