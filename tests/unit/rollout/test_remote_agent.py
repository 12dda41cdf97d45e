"""The remote agent (POST /run) against a server answering as NeMo Gym 0.7.0's simple_agent did."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from nemo_fakes import Behaviour, recorded_app, recording

from gymstream.errors import ServerCallError, ServerResponseError
from gymstream.nemo_gym.outputs.output_row import output_row
from gymstream.nemo_gym.servers.agent import RemoteAgent
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.settings import RetrySettings, ServerSettings
from gymstream.wire.messages import FailureClass, TaskMessage

QUICK = RetrySettings(max_attempts=2, backoff_initial_s=0.001, backoff_max_s=0.002)
RUN = recording("agent_01_stc_run.json")


@pytest.fixture
async def agent_and_log() -> AsyncIterator[tuple[RemoteAgent, Behaviour]]:
    behaviour = Behaviour()
    server = TestServer(recorded_app("agent", behaviour), host="127.0.0.1")
    await server.start_server()
    client = ServerClient(
        "stc_agent",
        str(server.make_url("")),
        settings=ServerSettings(),
        retry=QUICK,
        unavailable=FailureClass.REMOTE_AGENT_UNAVAILABLE,
        error=FailureClass.REMOTE_AGENT_ERROR,
    )
    yield RemoteAgent("stc_agent", client), behaviour
    await client.aclose()
    await server.close()


def row() -> dict[str, Any]:
    body: dict[str, Any] = RUN["request"]["body"]
    return body


async def test_run_posts_the_row_and_the_answer_is_the_verify_result(
    agent_and_log: tuple[RemoteAgent, Behaviour],
) -> None:
    agent, log = agent_and_log
    result = await agent.run(row())
    assert log.seen[0].path == "/run"
    assert log.seen[0].body == row()
    answer = RUN["response"]["body"]
    for key, value in answer.items():
        assert result.verify_result[key] == value, key
    task = TaskMessage(
        run_id="r", rollout_id="r/a/3/1", agent="a", task_index=3, rollout_index=1, row=row()
    )
    stamped = output_row(result.verify_result, task)
    assert (stamped["_ng_task_index"], stamped["_ng_rollout_index"]) == (3, 1)
    assert stamped["agent_ref"]["name"] == "a"


async def test_a_5xx_is_retried_then_remote_agent_unavailable(
    agent_and_log: tuple[RemoteAgent, Behaviour],
) -> None:
    agent, log = agent_and_log
    log.fail_first["/run"] = [503, 503]
    with pytest.raises(ServerCallError) as caught:
        await agent.run(row())
    assert caught.value.failure_class == FailureClass.REMOTE_AGENT_UNAVAILABLE
    assert caught.value.retriable
    assert len(log.seen) == 2


async def test_a_4xx_is_a_terminal_remote_agent_error(
    agent_and_log: tuple[RemoteAgent, Behaviour],
) -> None:
    agent, log = agent_and_log
    log.fail_first["/run"] = [422]
    with pytest.raises(ServerResponseError) as caught:
        await agent.run(row())
    assert caught.value.failure_class == FailureClass.REMOTE_AGENT_ERROR
    assert caught.value.http_status == 422
    assert not caught.value.retriable


async def test_a_500_answered_twice_is_a_terminal_remote_agent_error(
    agent_and_log: tuple[RemoteAgent, Behaviour],
) -> None:
    agent, log = agent_and_log
    log.fail_first["/run"] = [500, 500]
    with pytest.raises(ServerResponseError) as caught:
        await agent.run(row())
    assert caught.value.failure_class == FailureClass.REMOTE_AGENT_ERROR
    assert caught.value.http_status == 500
    assert not caught.value.retriable
    assert len(log.seen) == 2
