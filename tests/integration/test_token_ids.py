"""Token ids and log-probs end to end through a real Kafka: every turn of every row, exact.

``gymstream collect`` (a separate process) with GYMSTREAM_MODEL_RETURN_TOKEN_IDS=true against the
scripted model (both APIs), against a vLLM-shaped fake that is not the scripted model (with and
without prompt ids in the answer: then ``POST /tokenize``), and against servers that drop them
(a typed, terminal failure, never a reward).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import (
    AGENT_MULTI,
    AGENT_ONE,
    cli_env,
    gymstream,
    multiverifier_input,
    read_jsonl,
    single_tool_input,
)
from fixtures.vllm_fake import VllmFake, render_prompt

from gymstream.testing.server import LogprobsMode
from gymstream.testing.thread import ScriptedThread, start_scripted_in_thread
from gymstream.testing.tokens import generation_token_ids

pytestmark = pytest.mark.kafka

FIELDS = ("prompt_token_ids", "generation_token_ids", "generation_log_probs")
TOKEN_IDS_ON = {"GYMSTREAM_MODEL_RETURN_TOKEN_IDS": "true"}


@pytest.fixture
def scripted() -> Iterator[Any]:
    started: list[ScriptedThread] = []

    def start(mode: LogprobsMode) -> str:
        started.append(start_scripted_in_thread(logprobs=mode))
        return started[-1].url

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def vllm() -> Iterator[Any]:
    started: list[VllmFake] = []

    def start(**options: Any) -> VllmFake:
        started.append(VllmFake(**options))
        return started[-1]

    yield start
    for fake in started:
        fake.stop()


def collect(env: dict[str, str], data: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = gymstream("collect", "-i", str(data), "-o", str(out), "--no-progress", *extra, env=env)
    return result.returncode, result.stderr + result.stdout


def turns_of(row: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The model turns of a row's trajectory: runs of items between tool outputs."""
    items = row["response"]["output"]
    runs = itertools.groupby(items, key=lambda i: i["type"] == "function_call_output")
    return [list(run) for is_output, run in runs if not is_output]


def assert_ids_where_nemo_gym_puts_them(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Each turn's LAST item carries the three fields (last, in order), no other item does;
    prompts extend the previous prompt + generation. Returns the last items."""
    lasts = []
    for turn in turns_of(row):
        *others, last = turn
        assert all(not set(FIELDS) & set(item) for item in others)
        assert list(last)[-3:] == list(FIELDS)
        assert len(last["generation_token_ids"]) == len(last["generation_log_probs"]) > 0
        lasts.append(last)
    for previous, current in itertools.pairwise(lasts):
        grown = previous["prompt_token_ids"] + previous["generation_token_ids"]
        assert current["prompt_token_ids"][: len(grown)] == grown
    assert row["_gs_token_prefix_breaks"] == 0
    return lasts


def scripted_message(turn: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message a turn's items stand for (its text, then its calls)."""
    texts = [i["content"][0]["text"] for i in turn if i["type"] == "message"]
    calls = [
        {"function": {"name": i["name"], "arguments": i["arguments"]}}
        for i in turn
        if i["type"] == "function_call"
    ]
    return {"content": "".join(texts) or None, "tool_calls": calls}


@pytest.mark.parametrize(
    ("api", "mode", "options"),
    [
        # the CLI option, through spawned worker processes
        ("chat_completions", "asked", ("--model-return-token-ids", "--worker-processes", "1")),
        ("responses", "always", ()),  # the environment variable
    ],
)
def test_scripted_model_every_turn_of_every_row(
    kafka_bootstrap: str,
    scripted: Any,
    tmp_path: Path,
    api: str,
    mode: LogprobsMode,
    options: tuple[str, ...],
) -> None:
    on = {} if options else TOKEN_IDS_ON
    env = cli_env(kafka_bootstrap, scripted(mode), GYMSTREAM_MODEL_API=api, **on)
    out = tmp_path / "out.jsonl"
    code, log = collect(env, multiverifier_input(tmp_path / "in.jsonl"), out, *options)
    assert code == 0, log
    rows = read_jsonl(out)
    assert {r["agent_ref"]["name"] for r in rows} == {AGENT_ONE, AGENT_MULTI}
    assert len(rows) == 10
    for row in rows:
        lasts = assert_ids_where_nemo_gym_puts_them(row)
        assert len(lasts) >= 2  # a tool call, then the answer
        for turn, last in zip(turns_of(row), lasts, strict=True):  # exactly what it generated
            assert last["generation_token_ids"] == generation_token_ids(scripted_message(turn))


@pytest.mark.parametrize("prompt_ids", [True, False])
def test_vllm_shaped_server(
    kafka_bootstrap: str, vllm: Any, tmp_path: Path, prompt_ids: bool
) -> None:
    fake = vllm(prompt_ids=prompt_ids)
    env = cli_env(
        kafka_bootstrap,
        fake.url,
        GYMSTREAM_MODEL_API="chat_completions",
        **TOKEN_IDS_ON,
    )
    out = tmp_path / "out.jsonl"
    code, log = collect(env, single_tool_input(tmp_path / "in.jsonl", 3), out)
    assert code == 0, log
    rows = read_jsonl(out)
    assert len(rows) == 3
    generated = [
        [int(e["token"].removeprefix("token_id:")) for e in a["choices"][0]["logprobs"]["content"]]
        for a in fake.answers
    ]
    for row in rows:
        first, second = assert_ids_where_nemo_gym_puts_them(row)
        assert first["type"] == "function_call"
        assert second["type"] == "message"
        for last in (first, second):
            assert last["generation_token_ids"] in generated
        assert second["generation_log_probs"] == [
            -0.001 * (i % 50) for i in range(len(second["generation_token_ids"]))
        ]
    chats = [body for path, body in fake.requests if path == "/v1/chat/completions"]
    tokenizes = [body for path, body in fake.requests if path == "/tokenize"]
    assert len(chats) == 6
    for body in chats:
        assert body["logprobs"] is True
        assert body["top_logprobs"] == 0
        assert body["return_tokens_as_token_ids"] is True
        assert body["return_token_ids"] is True
    second_turns = [b for b in chats if b["messages"][-1]["role"] == "tool"]
    assert len(second_turns) == 3
    for body in second_turns:  # the first turn's ids ride back on its assistant message
        assistant = body["messages"][-2]
        assert assistant["role"] == "assistant"
        assert assistant["prompt_token_ids"] == render_prompt(body["messages"][:-2])
    if prompt_ids:  # vLLM sent them: no /tokenize round trip
        assert tokenizes == []
        assert all("prompt_token_ids" in a for a in fake.answers)
    else:
        assert len(tokenizes) == 6
        assert [t["messages"] for t in tokenizes].count(chats[0]["messages"]) >= 1


@pytest.mark.parametrize(
    ("api", "server"),
    [("chat_completions", "vllm_drop"), ("responses", "asked")],
)
def test_a_server_that_drops_them_is_a_typed_terminal_failure(
    kafka_bootstrap: str, scripted: Any, vllm: Any, tmp_path: Path, api: str, server: str
) -> None:
    url = vllm(drop=True).url if server == "vllm_drop" else scripted(server)
    env = cli_env(kafka_bootstrap, url, GYMSTREAM_MODEL_API=api, **TOKEN_IDS_ON)
    out = tmp_path / "out.jsonl"
    code, log = collect(env, single_tool_input(tmp_path / "in.jsonl", 2), out)
    assert read_jsonl(out) == []  # never a row, never a reward
    failures = read_jsonl(tmp_path / "out_failures.jsonl")
    assert len(failures) == 2, log
    for failure in failures:
        assert failure["_ng_failure_class"] == "model_token_ids_missing"
        assert failure["_ng_failure_terminal"] is True
        assert "reward" not in failure
        hint = (
            "return_token_id_information: true"
            if api == "responses"
            else "return_tokens_as_token_ids"
        )
        assert hint in failure["_ng_failure_message"]
    # every rollout is accounted for, as typed failures; a run where nothing succeeded exits 1
    assert code == 1, log
    assert "every rollout of run" in log, log
