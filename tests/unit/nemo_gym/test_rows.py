"""Row reader: exact messages for broken files, limits, bounded memory; then expansion."""

from __future__ import annotations

import os
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gymstream.errors import RowError
from gymstream.nemo_gym.rows.reader import InputRow, read_rows
from gymstream.nemo_gym.rows.rollouts import expand

AGENT = "example_single_tool_call_simple_agent"
OTHER = "example_multi_step_simple_agent"


def row(agent: str | None = AGENT, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"responses_create_params": {"input": "what's it like in sf?", **params}}
    if agent is not None:
        body["agent_ref"] = {"type": "responses_api_agents", "name": agent}
    return body


def line(value: Any) -> bytes:
    return msgspec.json.encode(value) + b"\n"


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    def _write(*lines: bytes, name: str = "data.jsonl") -> Path:
        path = tmp_path / name
        path.write_bytes(b"".join(lines))
        return path

    return _write


def read(
    path: Path,
    *,
    default_agent: str | None = None,
    known_agents: list[str] | None = None,
    **kwargs: Any,
) -> list[InputRow | RowError]:
    return list(read_rows(path, default_agent=default_agent, known_agents=known_agents, **kwargs))


def only_error(path: Path, **kwargs: Any) -> RowError:
    (result,) = read(path, **kwargs)
    assert isinstance(result, RowError)
    return result


# --- good input -------------------------------------------------------------------------------


def test_a_good_row_comes_out_whole(write: Callable[..., Path]) -> None:
    value = {**row(), "expected_answer": "cold", "verifier_metadata": {"x": [1, 2]}}
    path = write(line(value))
    (result,) = read(path, known_agents=[AGENT])
    assert result == InputRow(line=1, row=value, agent=AGENT, raw=line(value).rstrip(b"\n"))


def test_blank_lines_are_skipped_and_line_numbers_are_physical(
    write: Callable[..., Path],
) -> None:
    path = write(b"\n", line(row()), b"   \t\r\n", b"\n", line(row(OTHER)))
    results = read(path)
    assert [(r.line, r.agent) for r in results if isinstance(r, InputRow)] == [
        (2, AGENT),
        (5, OTHER),
    ]
    assert len(results) == 2


def test_an_empty_file_yields_nothing(write: Callable[..., Path]) -> None:
    assert read(write()) == []
    assert read(write(b"\n\n", name="blank.jsonl")) == []


def test_crlf_lines_a_bom_and_a_last_line_without_newline_are_read(
    write: Callable[..., Path],
) -> None:
    path = write(b"\xef\xbb\xbf" + line(row()).replace(b"\n", b"\r\n"), line(row(OTHER))[:-1])
    results = read(path)
    assert [(r.line, r.agent) for r in results if isinstance(r, InputRow)] == [
        (1, AGENT),
        (2, OTHER),
    ]
    first = results[0]
    assert isinstance(first, InputRow)
    assert first.raw == line(row())[:-1]


def test_default_agent_serves_only_rows_without_agent_ref(write: Callable[..., Path]) -> None:
    path = write(line(row(None)), line(row(OTHER)))
    results = read(path, default_agent=AGENT, known_agents=[AGENT, OTHER])
    assert [r.agent for r in results if isinstance(r, InputRow)] == [AGENT, OTHER]


def test_good_rows_still_come_out_around_bad_ones(write: Callable[..., Path]) -> None:
    path = write(line(row()), b"{oops\n", line(row(OTHER)), line([1]), line(row()))
    results = read(path)
    assert [(type(r).__name__, r.line) for r in results] == [
        ("InputRow", 1),
        ("RowError", 2),
        ("InputRow", 3),
        ("RowError", 4),
        ("InputRow", 5),
    ]


def test_limit_counts_the_first_physical_lines(write: Callable[..., Path]) -> None:
    path = write(line(row()), b"\n", b"bad\n", line(row(OTHER)), line(row()))
    assert [r.line for r in read(path, limit=3)] == [1, 3]
    assert [r.line for r in read(path, limit=4)] == [1, 3, 4]
    assert read(path, limit=0) == []


def test_read_rows_checks_its_arguments_at_once(write: Callable[..., Path]) -> None:
    path = write(line(row()))
    with pytest.raises(ValueError, match="limit"):
        read_rows(path, default_agent=None, known_agents=None, limit=-1)
    with pytest.raises(ValueError, match="max_row_bytes"):
        read_rows(path, default_agent=None, known_agents=None, max_row_bytes=0)
    with pytest.raises(ValueError, match="default_agent"):
        read_rows(path, default_agent="", known_agents=None)


def test_a_missing_file_raises_on_first_next(tmp_path: Path) -> None:
    rows = read_rows(tmp_path / "nope.jsonl", default_agent=None, known_agents=None)
    with pytest.raises(FileNotFoundError):
        next(rows)


# --- exact messages ---------------------------------------------------------------------------


def test_not_utf8(write: Callable[..., Path]) -> None:
    path = write(line(row()), b'{"responses_create_params": {"input": "caf\xe9"}}\n')
    results = read(path)
    assert str(results[1]) == (
        f"{path}:2: <line>: not valid UTF-8: byte 0xe9 at byte offset 42 of the line; "
        "save the file as UTF-8"
    )


def test_invalid_json_names_the_position(write: Callable[..., Path]) -> None:
    path = write(b'{"responses_create_params": {"input": "hi"}} trailing\n')
    assert str(only_error(path)) == (
        f"{path}:1: <line>: not valid JSON (JSON is malformed: trailing characters (byte 46)); "
        "each line must hold exactly one JSON object"
    )


def test_an_incomplete_middle_line_is_invalid_json_not_truncation(
    write: Callable[..., Path],
) -> None:
    path = write(b'{"responses_create_params": {\n', line(row()))
    error = read(path)[0]
    assert isinstance(error, RowError)
    assert error.problem == (
        "not valid JSON (Input data was truncated); each line must hold exactly one JSON object"
    )


def test_truncated_last_line(write: Callable[..., Path]) -> None:
    path = write(line(row()), line(row())[:30])
    results = read(path)
    assert isinstance(results[0], InputRow)
    assert str(results[1]) == (
        f"{path}:2: <line>: truncated last line: no newline at the end and not valid JSON "
        "(Input data was truncated); the file was probably cut off while being written: "
        "restore it or delete this line"
    )


def test_not_an_object(write: Callable[..., Path]) -> None:
    path = write(b'"hello"\n')
    assert str(only_error(path)) == (
        f"{path}:1: <line>: expected a JSON object, got a string; each line must hold one row "
        "object"
    )


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        (
            {"agent_ref": {"name": AGENT}},
            "responses_create_params",
            'missing: every row needs the request to send to the model, e.g. {"input": "..."}',
        ),
        (
            {"responses_create_params": [1]},
            "responses_create_params",
            "expected an object (the Responses API request), got an array",
        ),
        (
            {"responses_create_params": {"tools": []}},
            "responses_create_params.input",
            "missing: give the prompt as a string or a list of messages",
        ),
        (
            {"responses_create_params": {"input": 3}},
            "responses_create_params.input",
            "expected a string or a list of messages, got 3",
        ),
        (
            {"responses_create_params": {"input": [{"role": "user", "content": "x"}, "hi"]}},
            "responses_create_params.input[1]",
            'expected a message object such as {"role": "user", "content": "..."}, got a string',
        ),
        (
            row(tools={"name": "get_weather"}),
            "responses_create_params.tools",
            "expected a list of tool objects, got an object",
        ),
        (
            row(tools=[{"type": "function", "name": "a"}, {"type": "function", "name": "b"}, 7]),
            "responses_create_params.tools[2]",
            "expected a tool object, got 7",
        ),
        (
            row(tools=[{"type": "function", "name": "a"}, {"type": "function"}]),
            "responses_create_params.tools[1].name",
            "missing: a function tool needs the name the model calls",
        ),
        (
            row(tools=[{"name": ""}]),
            "responses_create_params.tools[0].name",
            "expected a non-empty string, got an empty string",
        ),
        (
            row(temperature="hot"),
            "responses_create_params.temperature",
            "expected a number such as 0.7, got a string",
        ),
        (
            row(temperature=True),
            "responses_create_params.temperature",
            "expected a number such as 0.7, got true",
        ),
        (
            row(max_output_tokens=10.5),
            "responses_create_params.max_output_tokens",
            "expected an integer such as 1024, got 10.5",
        ),
        (
            {**row(None), "agent_ref": "example"},
            "agent_ref",
            'expected an object such as {"name": "<agent>"}, got a string',
        ),
        (
            {**row(None), "agent_ref": None},
            "agent_ref",
            'expected an object such as {"name": "<agent>"}, got null',
        ),
        (
            {**row(None), "agent_ref": {"type": "responses_api_agents"}},
            "agent_ref.name",
            "missing: agent_ref must name the agent that serves this row",
        ),
        (
            {**row(None), "agent_ref": {"name": ""}},
            "agent_ref.name",
            "expected a non-empty agent name, got an empty string",
        ),
        (
            row(None),
            "agent_ref.name",
            "missing: add agent_ref to the row or pass --agent-name",
        ),
    ],
)
def test_bad_rows_name_field_and_problem(
    write: Callable[..., Path], value: Any, field: str, problem: str
) -> None:
    path = write(line(row()), line(value))
    error = read(path)[1]
    assert isinstance(error, RowError)
    assert (error.path, error.line, error.field, error.problem) == (str(path), 2, field, problem)
    assert str(error) == f"{path}:2: {field}: {problem}"


def test_optional_params_may_be_null_or_absent(write: Callable[..., Path]) -> None:
    value = row(tools=None, temperature=None, max_output_tokens=None)
    path = write(line(value), line(row(temperature=1, max_output_tokens=64, tools=[])))
    assert all(isinstance(r, InputRow) for r in read(path))


def test_tools_of_other_types_need_no_name(write: Callable[..., Path]) -> None:
    path = write(line(row(tools=[{"type": "web_search"}])))
    assert isinstance(read(path)[0], InputRow)


def test_unknown_agent_lists_the_known_ones(write: Callable[..., Path]) -> None:
    path = write(line(row("nope")))
    error = only_error(path, known_agents=[OTHER, AGENT])
    assert str(error) == (
        f"{path}:1: agent_ref.name: unknown agent 'nope'; known agents: "
        f"{OTHER}, {AGENT}; fix the name or configure that agent"
    )


def test_unknown_agent_lists_at_most_ten(write: Callable[..., Path]) -> None:
    path = write(line(row("nope")))
    known = [f"agent_{i:02d}" for i in range(13)]
    error = only_error(path, known_agents=known)
    assert error.problem == (
        "unknown agent 'nope'; known agents: "
        + ", ".join(known[:10])
        + " and 3 more; fix the name or configure that agent"
    )


def test_unknown_default_agent_says_where_it_came_from(write: Callable[..., Path]) -> None:
    path = write(line(row(None)))
    error = only_error(path, default_agent="typo", known_agents=[AGENT])
    assert error.problem == (
        f"unknown agent 'typo' (from --agent-name); known agents: {AGENT}; fix the name or "
        "configure that agent"
    )


def test_no_known_agents_configured(write: Callable[..., Path]) -> None:
    error = only_error(write(line(row())), known_agents=[])
    assert error.problem == f"unknown agent '{AGENT}'; no agents are configured"


# --- size limit -------------------------------------------------------------------------------


def test_a_row_over_max_row_bytes_is_skipped_unread(write: Callable[..., Path]) -> None:
    big = line(row(metadata={"pad": "x" * 5000}))
    path = write(line(row()), big, line(row(OTHER)))
    results = read(path, max_row_bytes=1000)
    assert str(results[1]) == (
        f"{path}:2: <line>: row is {len(big) - 1} bytes, over the limit of 1000 bytes "
        "(max_row_bytes); the row was skipped unread: shrink it or raise the limit"
    )
    assert [(r.line, r.agent) for r in results if isinstance(r, InputRow)] == [
        (1, AGENT),
        (3, OTHER),
    ]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_max_row_bytes_is_inclusive_and_ignores_the_line_ending(
    write: Callable[..., Path], ending: bytes
) -> None:
    body = line(row())[:-1]
    path = write(body + ending)
    assert isinstance(read(path, max_row_bytes=len(body))[0], InputRow)
    error = only_error(path, max_row_bytes=len(body) - 1)
    assert error.problem.startswith(f"row is {len(body)} bytes, over the limit of {len(body) - 1}")


def test_an_over_long_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as file:
        file.write(b'{"responses_create_params": {"input": "')
        for _ in range(64):
            file.write(b"x" * 128 * 1024)  # 8 MiB in one line
        file.write(b'"}}\n')
        file.write(line(row()))
    tracemalloc.start()
    try:
        results = read(path, max_row_bytes=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(r) for r in results] == [RowError, InputRow]
    assert peak < 1024 * 1024, f"peak {peak} bytes while skipping an 8 MiB line"


# --- laziness ---------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe (POSIX)")
def test_read_rows_reads_no_further_than_consumed(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    first_row_taken = threading.Event()
    writer_waited_in_vain: list[bool] = []

    def writer() -> None:
        with fifo.open("wb") as pipe:
            pipe.write(line(row()))
            pipe.flush()
            # Hold back the rest until the reader has the first row: an eager reader would
            # wait for the end of the file, and get it only when this times out.
            writer_waited_in_vain.append(not first_row_taken.wait(timeout=10))
            pipe.write(line(row(OTHER)))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        rows = read_rows(fifo, default_agent=None, known_agents=None)
        first = next(rows)
        first_row_taken.set()
        rest = list(rows)
    finally:
        first_row_taken.set()
        thread.join(timeout=20)
    assert writer_waited_in_vain == [False]
    assert isinstance(first, InputRow)
    assert first.agent == AGENT
    assert [r.agent for r in rest if isinstance(r, InputRow)] == [OTHER]


# --- read, then expand -------------------------------------------------------------------------


def test_expand_from_a_file_end_to_end(write: Callable[..., Path]) -> None:
    path = write(line(row()), b"not json\n", line(row(OTHER)), line(row()))
    good = (
        r for r in read_rows(path, default_agent=None, known_agents=None) if isinstance(r, InputRow)
    )
    assert [
        (r.agent, r.task_index, r.rollout_index, r.line) for r in expand(good, num_repeats=1)
    ] == [
        (AGENT, 0, 0, 1),
        (OTHER, 1, 0, 3),
        (AGENT, 0, 1, 4),
    ]
