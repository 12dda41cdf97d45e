"""The HTTP resources-server environment against servers that answer as NeMo Gym 0.7.0's did
(the recordings in tests/data/nemo_gym_protocol/): cookies, raw tool texts, errors, retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from nemo_fakes import Behaviour, recorded_app, recording
from test_loop import FakeModel, call, message, response

from gymstream.errors import ServerCallError, ServerResponseError
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.nemo_gym.servers.resources import ResourcesServerEnvironment, ResourcesSession
from gymstream.rollout.loop import run_rollout
from gymstream.settings import RetrySettings, ServerSettings
from gymstream.wire.messages import FailureClass

QUICK = RetrySettings(max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002)

Start = Callable[..., Any]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[TestServer] = []
    clients: list[ServerClient] = []

    async def go(
        prefix: str, behaviour: Behaviour | None = None, *, timeout_s: float = 5.0
    ) -> tuple[ResourcesServerEnvironment, Behaviour]:
        behaviour = behaviour or Behaviour()
        server = TestServer(recorded_app(prefix, behaviour), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        client = ServerClient(
            prefix,
            str(server.make_url("")),
            settings=ServerSettings(timeout_s=timeout_s),
            retry=QUICK,
        )
        clients.append(client)
        return ResourcesServerEnvironment(name=prefix, client=client), behaviour

    yield go
    for client in clients:
        await client.aclose()
    for server in servers:
        await server.close()


def stc_row() -> dict[str, Any]:
    body: dict[str, Any] = recording("stc_01_seed_session_legacy_row.json")["request"]["body"]
    return body


async def test_seed_then_tool_sends_the_seed_cookie_and_returns_the_body_text(start: Start) -> None:
    env, seen = await start("stc")
    session = await env.seed(stc_row())
    recorded = recording("stc_02_tool_get_weather_with_cookie.json")
    assert session.cookies  # the server's session cookie
    text = await env.call_tool(session, "get_weather", '{"city": "sf"}')
    assert text == '{"city":"sf","weather_description":"The weather in sf is cold."}'
    assert seen.seen[0].path == "/seed_session"
    assert seen.seen[0].body == stc_row()
    assert seen.seen[1].body == {"city": "sf"}
    assert seen.seen[1].cookie == recorded["request"]["headers"]["cookie"]


@pytest.mark.parametrize(
    ("tool", "arguments", "recorded"),
    [
        ("get_weather", '{"town": "sf"}', "stc_04_tool_get_weather_bad_args_422.json"),
        ("get_weather", '["sf"]', "stc_05_tool_get_weather_not_json_object.json"),
        ("no_such_tool", '{"x": 1}', "stc_06_tool_unknown_404.json"),
    ],
)
async def test_an_error_status_is_the_tool_output_text(
    start: Start, tool: str, arguments: str, recorded: str
) -> None:
    env, _ = await start("stc")
    text = await env.call_tool(ResourcesSession(), tool, arguments)
    body = recording(recorded)["response"]["body"]
    assert json.loads(text) == body
    assert ", " not in text  # compact, as FastAPI renders it


async def test_arguments_that_are_not_json_become_nemo_gyms_error_text(start: Start) -> None:
    env, seen = await start("stc")
    text = await env.call_tool(ResourcesSession(), "get_weather", "{city")
    try:
        json.loads("{city")
    except json.JSONDecodeError as exc:
        expected = json.dumps({"error": f"Invalid tool call arguments: {exc!r}"})
    assert text == expected
    assert seen.seen == []  # nothing was sent


async def test_verify_returns_the_servers_fields_as_returned(start: Start) -> None:
    env, _ = await start("stc")
    recorded = recording("stc_07_verify_row_plus_response.json")
    body = recorded["request"]["body"]
    row = {k: v for k, v in body.items() if k != "response"}
    fields = await env.verify_session(ResourcesSession(), row, body["response"])
    assert fields == recorded["response"]["body"]


async def test_the_cookie_is_the_session(start: Start) -> None:
    env, seen = await start("state")
    seed = recording("state_01_seed_session_initial_count_3.json")["request"]["body"]
    session = await env.seed(seed)
    assert await env.call_tool(session, "increment_counter", '{"count": 1}') == '{"success":true}'
    assert await env.call_tool(session, "get_counter_value", "{}") == '{"count":6}'
    verify = recording("state_06_verify_with_cookie.json")
    fields = await env.verify_session(session, seed, verify["request"]["body"]["response"])
    assert fields["reward"] == 1.0
    cookie = verify["request"]["headers"]["cookie"]
    assert [s.cookie for s in seen.seen[1:]] == [cookie, cookie, cookie]
    fresh = await env.call_tool(ResourcesSession(), "get_counter_value", "{}")
    assert fresh == '{"count":0}'  # no cookie: a fresh session


async def test_a_refused_seed_is_terminal(start: Start) -> None:
    env, _ = await start("stc", Behaviour(fail_first={"/seed_session": [422]}))
    with pytest.raises(ServerResponseError) as caught:
        await env.seed(stc_row())
    assert caught.value.http_status == 422
    assert not caught.value.retriable
    assert caught.value.failure_class == FailureClass.RESOURCES_SERVER_ERROR


async def test_a_500_from_verify_is_terminal_and_not_retried(start: Start) -> None:
    env, seen = await start("stc", Behaviour(fail_first={"/verify": [500, 500]}))
    with pytest.raises(ServerResponseError) as caught:
        await env.verify_session(ResourcesSession(), stc_row(), {"output": []})
    assert caught.value.http_status == 500
    assert [s.path for s in seen.seen] == ["/verify"]


async def test_5xx_is_retried_with_backoff_until_it_answers(start: Start) -> None:
    env, seen = await start("stc", Behaviour(fail_first={"/get_weather": [503, 502]}))
    text = await env.call_tool(ResourcesSession(), "get_weather", '{"city": "sf"}')
    assert json.loads(text)["city"] == "sf"
    assert [s.path for s in seen.seen] == ["/get_weather"] * 3


async def test_retries_are_bounded_then_a_retriable_typed_failure(start: Start) -> None:
    env, seen = await start("stc", Behaviour(fail_first={"/seed_session": [503] * 5}))
    with pytest.raises(ServerCallError) as caught:
        await env.seed(stc_row())
    assert caught.value.retriable
    assert caught.value.failure_class == FailureClass.RESOURCES_SERVER_UNAVAILABLE
    assert caught.value.attempts == QUICK.max_attempts
    assert len(seen.seen) == QUICK.max_attempts


async def test_a_server_that_does_not_answer_in_time_times_out(start: Start) -> None:
    env, _ = await start("stc", Behaviour(delay_s={"/get_weather": 2.0}), timeout_s=0.1)
    with pytest.raises(ServerCallError, match=r"no answer within 0\.1 s"):
        await env.call_tool(ResourcesSession(), "get_weather", '{"city": "sf"}')


async def test_an_unreachable_server_is_a_typed_failure_and_unhealthy() -> None:
    app_server = TestServer(web.Application(), host="127.0.0.1")
    await app_server.start_server()
    url = str(app_server.make_url(""))
    await app_server.close()  # nothing listens there any more
    client = ServerClient("gone", url, settings=ServerSettings(), retry=QUICK)
    try:
        assert await client.healthy() is not None
        with pytest.raises(ServerCallError, match="'gone'"):
            await ResourcesServerEnvironment("gone", client).seed(stc_row())
    finally:
        await client.aclose()


async def test_the_agent_loop_over_http_writes_nemo_gyms_texts_and_verify_fields(
    start: Start,
) -> None:
    env, seen = await start("stc")
    model = FakeModel(
        [response(call("get_weather", '{"city": "sf"}', "c1")), response(message("cold"))]
    )
    result = await run_rollout(stc_row(), env, model, model_name="m")
    out = result.verify_result
    tool_output = out["response"]["output"][1] if "response" in out else None
    verified = recording("stc_07_verify_row_plus_response.json")["response"]["body"]
    assert out["reward"] == verified["reward"]
    assert out["responses_create_params"] == verified["responses_create_params"]
    sent = seen.seen[-1].body["response"]["output"]
    assert sent[1] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": '{"city":"sf","weather_description":"The weather in sf is cold."}',
    }
    assert tool_output is not None
    assert [s.path for s in seen.seen] == ["/seed_session", "/get_weather", "/verify"]


async def test_a_500_answered_twice_on_a_tool_is_the_servers_error_after_one_retry(
    start: Start,
) -> None:
    env, seen = await start("stc", Behaviour(fail_first={"/seed_session": [500] * 5}))
    with pytest.raises(ServerResponseError) as caught:
        await env.seed(stc_row())
    assert caught.value.failure_class == FailureClass.RESOURCES_SERVER_ERROR
    assert not caught.value.retriable
    assert caught.value.attempts == 2
    assert len(seen.seen) == 2


async def test_a_500_then_a_refused_answer_kind_is_not_a_confirmation(start: Start) -> None:
    env, seen = await start("stc", Behaviour(fail_first={"/get_weather": [500, 502, 500]}))
    with pytest.raises(ServerCallError) as caught:
        await env.call_tool(ResourcesSession(), "get_weather", '{"city": "sf"}')
    assert caught.value.failure_class == FailureClass.RESOURCES_SERVER_UNAVAILABLE
    assert len(seen.seen) == QUICK.max_attempts
