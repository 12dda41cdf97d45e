"""Bad input files through `gymstream produce` (a subprocess, against a real broker).

Each bad line gets one clear line naming file:line: field: problem (no traceback), is written to
the rejects file and skipped; the good rows around it are published, which the tasks topic shows.
A file with nothing to publish is an error with a clear message and a non-zero exit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka_helpers import read_all
from pipeline_helpers import AGENT_ONE, cli_env, gymstream

from gymstream.kafka.topics import load_layout
from gymstream.wire.codec import DECODE_TASK

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

PARAMS = {"input": [{"role": "user", "content": "what's it like in sf?"}]}
REF = {"type": "responses_api_agents", "name": AGENT_ONE}
OVERSIZE_BYTES = 50 * 1024 * 1024  # over rows.DEFAULT_MAX_ROW_BYTES (32 MiB)


def good(row_id: int) -> bytes:
    return json.dumps({"id": row_id, "responses_create_params": PARAMS, "agent_ref": REF}).encode()


def bad(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@dataclass(frozen=True)
class Case:
    lines: list[bytes]
    """The file's lines, joined by newlines (a final one unless ``no_final_newline``)."""
    errors: list[tuple[int, str, str]]
    """(line, field, start of the problem) for each bad line, in file order."""
    good_ids: set[int]
    no_final_newline: bool = False


CASES = {
    "invalid_json": Case(
        [good(0), b'{"responses_create_params": {"input": "hi"},, }', good(1)],
        [(2, "<line>", "not valid JSON (JSON is malformed")],
        {0, 1},
    ),
    "truncated_last_line": Case(
        [good(0), good(1), b'{"id": 2, "responses_create_params": {"input": "cut o'],
        [(3, "<line>", "truncated last line: no newline at the end and not valid JSON")],
        {0, 1},
        no_final_newline=True,
    ),
    "missing_agent_ref": Case(
        [good(0), bad(id=1, responses_create_params=PARAMS), good(2)],
        [(2, "agent_ref.name", "missing: add agent_ref to the row or pass --agent-name")],
        {0, 2},
    ),
    "unknown_agent_ref": Case(
        [
            good(0),
            bad(id=1, responses_create_params=PARAMS, agent_ref={"name": "no_such_agent"}),
            bad(id=2, responses_create_params=PARAMS, agent_ref={"type": "x"}),
            good(3),
        ],
        [
            (2, "agent_ref.name", "unknown agent 'no_such_agent'; known agents: "),
            (3, "agent_ref.name", "missing: agent_ref must name the agent that serves this row"),
        ],
        {0, 3},
    ),
    "wrong_types": Case(
        [
            good(0),
            b'[{"responses_create_params": {"input": "hi"}}]',
            bad(id=2, responses_create_params=["hi"], agent_ref=REF),
            bad(id=3, responses_create_params={"input": 42}, agent_ref=REF),
            bad(id=4, responses_create_params={**PARAMS, "temperature": "hot"}, agent_ref=REF),
            bad(id=5, responses_create_params={**PARAMS, "max_output_tokens": 1.5}, agent_ref=REF),
            bad(id=6, responses_create_params={**PARAMS, "tools": {"name": "x"}}, agent_ref=REF),
            bad(id=7, responses_create_params=PARAMS, agent_ref=AGENT_ONE),
            bad(id=8, responses_create_params=PARAMS, agent_ref={"name": 3}),
            good(9),
        ],
        [
            (2, "<line>", "expected a JSON object, got an array"),
            (3, "responses_create_params", "expected an object (the Responses API request)"),
            (4, "responses_create_params.input", "expected a string or a list of messages, got 42"),
            (5, "responses_create_params.temperature", "expected a number such as 0.7, got a str"),
            (6, "responses_create_params.max_output_tokens", "expected an integer such as 1024"),
            (7, "responses_create_params.tools", "expected a list of tool objects, got an object"),
            (8, "agent_ref", 'expected an object such as {"name": "<agent>"}, got a string'),
            (9, "agent_ref.name", "expected a non-empty agent name, got 3"),
        ],
        {0, 9},
    ),
    "deeply_nested": Case(
        [
            good(0),
            b'{"id": 1, "responses_create_params": {"input": "hi"}, "x": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}",
            good(2),
        ],
        [(2, "<line>", "nested too deeply: JSON this deep cannot be read")],
        {0, 2},
    ),
    "not_utf8": Case(
        [good(0), b'{"id": 1, "responses_create_params": {"input": "caf\xe9 \xff"}}', good(2)],
        [(2, "<line>", "not valid UTF-8: byte 0xe9 at byte offset 51 of the line; save the file")],
        {0, 2},
    ),
}


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    """Its own topic prefix, with the agent's topics created."""
    values = cli_env(kafka_bootstrap)
    applied = gymstream("topics", "apply", "--agent", AGENT_ONE, env=values)
    assert applied.returncode == 0, applied.stderr
    return values


def write_lines(path: Path, lines: list[bytes], *, final_newline: bool = True) -> Path:
    path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    return path


def produce(env: dict[str, str], data: Path, run_id: str, tmp_path: Path) -> tuple[int, str]:
    """Run `gymstream produce`; (exit code, stdout + stderr). Never a traceback."""
    result = gymstream(
        "produce",
        str(data),
        "--run-id",
        run_id,
        "--rejects",
        str(tmp_path / "rejects.jsonl"),
        env=env,
    )
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    return result.returncode, text


def published(text: str) -> tuple[int, int, int]:
    """(rows read, rollouts published, rows rejected) from the produce summary."""
    found = re.search(r"(\d+) rows read, (\d+) rollouts published, (\d+) rows rejected", text)
    assert found, text
    return int(found[1]), int(found[2]), int(found[3])


async def published_ids(env: dict[str, str], run_id: str) -> list[int]:
    """The ``id`` of every task of ``run_id`` on the agent's tasks topic."""
    topic = load_layout(None, env["GYMSTREAM_TOPIC_PREFIX"]).tasks(AGENT_ONE)
    tasks = [DECODE_TASK.decode(v) for v in await read_all(env["GYMSTREAM_KAFKA_BOOTSTRAP"], topic)]
    return sorted(t.row["id"] for t in tasks if t.run_id == run_id)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_bad_rows_are_reported_and_good_rows_go_through(
    name: str, env: dict[str, str], tmp_path: Path
) -> None:
    case = CASES[name]
    data = write_lines(tmp_path / "in.jsonl", case.lines, final_newline=not case.no_final_newline)
    code, text = produce(env, data, name, tmp_path)

    assert code == 3, text  # completed, but rows were rejected (cli/exit_codes.py)
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"error: completed with problems: {len(case.errors)} rows rejected")
    for line, field, problem in case.errors:
        assert f"{data}:{line}: {field}: {problem}" in text, text
    assert published(text) == (len(case.good_ids), len(case.good_ids), len(case.errors))
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(x[0], x[1]) for x in case.errors]
    assert await published_ids(env, name) == sorted(case.good_ids)


async def test_a_50mb_row_is_skipped_unread(env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    with data.open("wb") as handle:
        handle.write(good(0) + b"\n")
        handle.write(b'{"id": 1, "responses_create_params": {"input": "')
        handle.write(b"x" * OVERSIZE_BYTES)
        handle.write(b'"}, "agent_ref": ' + json.dumps(REF).encode() + b"}\n")
        handle.write(good(2) + b"\n")
    size = len(data.read_bytes().splitlines()[1])
    code, text = produce(env, data, "big", tmp_path)

    assert code == 3, text
    assert f"{data}:2: <line>: row is {size} bytes, over the limit of 33554432 bytes" in text
    assert published(text) == (2, 2, 1)
    assert await published_ids(env, "big") == [0, 2]


async def test_a_row_whose_task_exceeds_the_topic_limit_is_rejected(
    env: dict[str, str], tmp_path: Path
) -> None:
    """17 MB: under the reader's 32 MiB row limit, over the tasks topic's 16 MiB
    max.message.bytes. It used to abort produce (exit 1, no file or line, nothing after it)."""
    data = tmp_path / "in.jsonl"
    with data.open("wb") as handle:
        handle.write(good(0) + b"\n")
        handle.write(b'{"id": 1, "responses_create_params": {"input": "')
        handle.write(b"x" * (17 * 1024 * 1024))
        handle.write(b'"}, "agent_ref": ' + json.dumps(REF).encode() + b"}\n")
        handle.write(good(2) + b"\n")
    code, text = produce(env, data, "task-too-big", tmp_path)

    assert code == 3, text
    assert re.search(
        rf"{re.escape(str(data))}:2: <line>: its task message is \d+ bytes, over the \d+ bytes "
        r"a record on \S+ may carry \(the topic's max.message.bytes\)",
        text,
    ), text
    assert published(text) == (2, 2, 1)
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(2, "<line>")]
    assert await published_ids(env, "task-too-big") == [0, 2]


async def test_rejects_pointing_at_the_input_is_refused_and_the_input_kept(
    env: dict[str, str], tmp_path: Path
) -> None:
    data = write_lines(tmp_path / "in.jsonl", [good(0), b"[1]", good(2)])
    before = data.read_bytes()
    result = gymstream("produce", str(data), "--run-id", "same", "--rejects", str(data), env=env)
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    assert "Traceback" not in text, text
    assert f"--rejects {data} is the input file" in text, text
    assert data.read_bytes() == before
    assert await published_ids(env, "same") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no rows to publish"),
        (b"\n  \n\t\n", "no rows to publish"),
        (b'{"id": 0}\n[1]\n', "no rows to publish"),
    ],
    ids=["empty", "blank_lines", "only_bad_rows"],
)
async def test_nothing_to_publish_is_an_error(
    content: bytes, message: str, env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_bytes(content)
    code, text = produce(env, data, "empty", tmp_path)

    assert code != 0, text
    assert f"error: {data}: {message}" in text, text
    if content:  # an empty file is refused before anything starts: no summary
        assert published(text)[1] == 0
    assert await published_ids(env, "empty") == []


async def test_user_text_in_brackets_is_shown_as_is(env: dict[str, str], tmp_path: Path) -> None:
    strange = bad(id=1, responses_create_params=PARAMS, agent_ref={"name": "agent[/x]"})
    data = write_lines(tmp_path / "in.jsonl", [good(0), strange])
    result = gymstream(
        "produce", str(data), "--run-id", "markup", "--rejects", str(tmp_path / "r.jsonl"), env=env
    )
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert result.returncode == 3, text
    assert f"{data}:2: agent_ref.name: unknown agent 'agent[/x]'" in text, text
