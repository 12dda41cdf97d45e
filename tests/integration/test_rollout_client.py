"""The rollout client against the real broker: rows in, (row, result) out, failures typed,
its own workers started when none serve an agent, nothing left behind when it stops."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
from fixtures.client import (
    client_kafka,
    client_rows,
    client_settings,
    drained,
    topic_names,
)
from fixtures.model import ModelFactory
from fixtures.pipeline import AGENT_MULTI, AGENT_ONE

from gymstream.client import RolloutClient, RolloutFailedError, SyncRolloutClient
from gymstream.errors import ConfigError
from gymstream.nemo_gym.config.agents import load_config
from gymstream.runs.tail import read_manifests
from gymstream.testing.thread import ScriptedThread, start_scripted_in_thread

pytestmark = pytest.mark.kafka


@pytest.fixture
def model(make_scripted_model: ModelFactory) -> ScriptedThread:
    return make_scripted_model()


async def test_every_row_once_as_nemo_gyms_run_result(
    kafka_bootstrap: str, model: ScriptedThread, caplog: pytest.LogCaptureFixture
) -> None:
    kafka, layout = client_kafka(kafka_bootstrap)
    rows = client_rows("example_single_tool_call", AGENT_ONE, 6)
    rows += client_rows("example_multi_step", AGENT_MULTI, 3)
    rows += [rows[0]]  # a repeat: same task, next rollout index
    caplog.set_level(logging.INFO, logger="gymstream.client")
    async with RolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=client_settings(model.url)
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
    kafka, layout = client_kafka(kafka_bootstrap)
    failing = start_scripted_in_thread(error_rate=1.0)
    rows = client_rows("example_single_tool_call", AGENT_ONE, 4)
    try:
        async with RolloutClient(
            load_config(), kafka=kafka, layout=layout, settings=client_settings(failing.url)
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
            assert await drained(kafka, client.layout, AGENT_ONE)
            assert not client.layout.shared  # the client's own scope: docs/scopes.md
    finally:
        failing.stop()
    assert client.layout.tasks(AGENT_ONE) not in await topic_names(kafka)  # dropped at close


async def test_a_bad_row_is_named_and_nothing_is_published(
    kafka_bootstrap: str, model: ScriptedThread
) -> None:
    kafka, layout = client_kafka(kafka_bootstrap)
    rows = client_rows("example_single_tool_call", AGENT_ONE, 3)
    rows[2] = {**rows[2], "agent_ref": {"name": "nobody"}}
    async with RolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=client_settings(model.url)
    ) as client:
        with pytest.raises(ConfigError, match=r"^row 2: agent_ref"):
            await _exhaust(client, rows)
        assert client.own_workers == []  # nothing was published, nothing started
    assert not await read_manifests(kafka, layout)  # no run began


def test_sync_client_leaving_early_drains_the_run(
    kafka_bootstrap: str, model: ScriptedThread
) -> None:
    kafka, layout = client_kafka(kafka_bootstrap)
    rows = client_rows("example_single_tool_call", AGENT_ONE, 5)
    with SyncRolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=client_settings(model.url)
    ) as client:
        assert len(client.run_all(rows)) == 5
        for _ in client.run(rows):
            break  # the rest is drained before the iterator closes
        scoped = client.client.layout
        assert client.submit(drained(kafka, scoped, AGENT_ONE)).result()
