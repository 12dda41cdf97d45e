"""Read a NeMo Gym JSONL dataset into validated rows, and expand the rows into rollouts.

``read_rows`` streams the file: it holds one line at a time (never more than ``max_row_bytes``
of it), so memory does not grow with the file. Each bad line comes out as a ``RowError`` (not
raised) naming file, line, field and what to do, so the caller can count it, write it to a
rejects file and go on, or stop when failing fast.

Rules a caller must know:

- Line numbers are 1-based physical lines of the file.
- Blank lines (only spaces, tabs, CR, LF) are not rows: they are skipped without an error.
- ``limit=N`` reads only the first N physical lines of the file, blank ones included, like
  NeMo Gym's ``limit`` and ``head -n N``; bad lines among them are reported, not replaced.
- One error per bad line: the first problem found.
- A UTF-8 byte order mark at the start of the file is ignored.
- Optional request keys that hold ``null`` count as unset, as in the OpenAI API.
- A row's agent is ``agent_ref.name``; ``default_agent`` serves only rows with no ``agent_ref``.

``expand`` turns rows into rollouts in the order a a b b c c. Identical lines (same bytes once
surrounding whitespace is stripped, served by the same agent) share one ``_ng_task_index`` and
their rollout indices continue (0..n-1 for the first, n..2n-1 for the second), so that
(task_index, rollout_index) stays unique, as in NeMo Gym. Spotting duplicates means
remembering a 16-byte digest per distinct row: ``task_index.TaskIndex`` keeps up to 100,000 in
memory and the rest in a temporary SQLite table, so memory stays bounded whatever the file.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import msgspec

from gymstream.errors import RowError
from gymstream.nemo.task_index import TaskIndex

__all__ = [
    "DEFAULT_MAX_ROW_BYTES",
    "LINE_FIELD",
    "InputRow",
    "Rollout",
    "apply_overrides",
    "expand",
    "parse_override",
    "parse_repeats",
    "read_rows",
]

DEFAULT_MAX_ROW_BYTES: Final = 32 * 1024 * 1024
LINE_FIELD: Final = "<line>"
"""The field named by errors about the line as a whole (encoding, JSON syntax, size)."""

_PARAMS: Final = "responses_create_params"
_DEFAULT_REPEATS_KEY: Final = "_default"
_JSON_WHITESPACE: Final = b" \t\r\n"
_SKIP_CHUNK_BYTES: Final = 64 * 1024
_MAX_LISTED_AGENTS: Final = 10
_MISSING: Final = object()
_DECODER: Final = msgspec.json.Decoder()


class InputRow(msgspec.Struct, frozen=True):
    """One good input line: the decoded row (kept whole) and the agent that serves it.

    A msgspec struct rather than a dataclass: a frozen dataclass costs ~10x more to build, which
    is a second per million rows.
    """

    line: int
    row: dict[str, Any]
    agent: str
    raw: bytes
    """The line's bytes with surrounding whitespace stripped: the row's identity."""


class Rollout(msgspec.Struct, frozen=True):
    """One rollout to run.

    ``row`` is the input row unchanged, and the same dict object for every repeat of a line:
    copy it before changing it (``apply_overrides`` returns a new dict).
    """

    agent: str
    task_index: int
    rollout_index: int
    row: dict[str, Any]
    line: int


def read_rows(
    path: Path,
    *,
    default_agent: str | None,
    known_agents: Collection[str] | None,
    limit: int | None = None,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
) -> Iterator[InputRow | RowError]:
    """Yield each non-blank line of ``path`` (up to ``limit`` lines) as a row or an error.

    Lazy: the file is opened on the first ``next()`` and read only as far as consumed; it is
    closed when the iterator is exhausted or closed. ``known_agents=None`` accepts any agent
    name. An empty file yields nothing. Raises ``ValueError`` at once for bad arguments, and
    ``OSError`` from the first ``next()`` if the file cannot be opened or read.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if max_row_bytes < 1:
        raise ValueError(f"max_row_bytes must be >= 1, got {max_row_bytes}")
    if default_agent is not None and not default_agent:
        raise ValueError("default_agent must be a non-empty agent name or None")
    known = None if known_agents is None else frozenset(known_agents)
    return _read_rows(Path(path), default_agent, known, limit, max_row_bytes)


def _read_rows(
    path: Path,
    default_agent: str | None,
    known: frozenset[str] | None,
    limit: int | None,
    max_row_bytes: int,
) -> Iterator[InputRow | RowError]:
    with path.open("rb") as file:
        line_no = 0
        while limit is None or line_no < limit:
            # One byte past the limit plus room for CR LF tells "at the limit" from "over it"
            # without ever holding more than the limit.
            line = file.readline(max_row_bytes + 2)
            if not line:
                return
            line_no += 1
            if line_no == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]  # editors on Windows add one; it is no data
            has_newline = line.endswith(b"\n")
            if not has_newline and len(line) == max_row_bytes + 2:
                size = _measure_rest_of_line(line, file)
                yield RowError(path, line_no, LINE_FIELD, _too_large(size, max_row_bytes))
                continue
            size = len(line) - (2 if line.endswith(b"\r\n") else 1 if has_newline else 0)
            if size > max_row_bytes:
                yield RowError(path, line_no, LINE_FIELD, _too_large(size, max_row_bytes))
                continue
            raw = line.strip(_JSON_WHITESPACE)
            if not raw:
                continue
            try:
                obj = _DECODER.decode(line)  # the whole line, so error positions match the file
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                problem = _decode_problem(line, exc, truncated=not has_newline)
                yield RowError(path, line_no, LINE_FIELD, problem)
                continue
            found = _check_row(obj)
            if found is None:
                agent_or_error = _resolve_agent(obj, default_agent, known)
                if isinstance(agent_or_error, str):
                    yield InputRow(line=line_no, row=obj, agent=agent_or_error, raw=raw)
                    continue
                found = agent_or_error
            yield RowError(path, line_no, *found)


def _measure_rest_of_line(start: bytes, file: IO[bytes]) -> int:
    """Read past the rest of an over-long line in chunks; return its size, line ending excluded."""
    size, last = len(start), start
    while chunk := file.readline(_SKIP_CHUNK_BYTES):
        if chunk.endswith(b"\n"):
            before_newline = chunk[-2:-1] if len(chunk) > 1 else last[-1:]
            return size + len(chunk) - (2 if before_newline == b"\r" else 1)
        size, last = size + len(chunk), chunk
    return size


def _too_large(size: int, max_row_bytes: int) -> str:
    return (
        f"row is {size} bytes, over the limit of {max_row_bytes} bytes (max_row_bytes); "
        "the row was skipped unread: shrink it or raise the limit"
    )


def _decode_problem(line: bytes, exc: Exception, *, truncated: bool) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return (
            f"not valid UTF-8: byte 0x{line[bad.start]:02x} at byte offset {bad.start} of the "
            "line; save the file as UTF-8"
        )
    if truncated:
        return (
            f"truncated last line: no newline at the end and not valid JSON ({exc}); the file "
            "was probably cut off while being written: restore it or delete this line"
        )
    return f"not valid JSON ({exc}); each line must hold exactly one JSON object"


def _describe(value: Any) -> str:
    """Name a JSON value's kind for a message: 'an array', 'a string', '1.5', 'null'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_row(obj: Any) -> tuple[str, str] | None:
    """Return (field, problem) for the first structural problem of a decoded line, or None."""
    if not isinstance(obj, dict):
        return LINE_FIELD, (
            f"expected a JSON object, got {_describe(obj)}; each line must hold one row object"
        )
    params = obj.get(_PARAMS, _MISSING)
    if params is _MISSING:
        return _PARAMS, (
            'missing: every row needs the request to send to the model, e.g. {"input": "..."}'
        )
    if not isinstance(params, dict):
        return _PARAMS, f"expected an object (the Responses API request), got {_describe(params)}"
    return _check_input(params) or _check_tools(params) or _check_sampling(params)


def _check_input(params: dict[str, Any]) -> tuple[str, str] | None:
    field = f"{_PARAMS}.input"
    prompt = params.get("input", _MISSING)
    if prompt is _MISSING or prompt is None:
        return field, "missing: give the prompt as a string or a list of messages"
    if isinstance(prompt, str):
        return None
    if not isinstance(prompt, list):
        return field, f"expected a string or a list of messages, got {_describe(prompt)}"
    for i, item in enumerate(prompt):
        if not isinstance(item, dict):
            return f"{field}[{i}]", (
                'expected a message object such as {"role": "user", "content": "..."}, '
                f"got {_describe(item)}"
            )
    return None


def _check_tools(params: dict[str, Any]) -> tuple[str, str] | None:
    field = f"{_PARAMS}.tools"
    tools = params.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return field, f"expected a list of tool objects, got {_describe(tools)}"
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return f"{field}[{i}]", f"expected a tool object, got {_describe(tool)}"
        if tool.get("type", "function") != "function":
            continue
        name = tool.get("name", _MISSING)
        if name is _MISSING:
            return f"{field}[{i}].name", "missing: a function tool needs the name the model calls"
        if not isinstance(name, str) or not name:
            return f"{field}[{i}].name", f"expected a non-empty string, got {_describe(name)}"
    return None


def _check_sampling(params: dict[str, Any]) -> tuple[str, str] | None:
    temperature = params.get("temperature")
    if temperature is not None and not _is_number(temperature):
        return f"{_PARAMS}.temperature", (
            f"expected a number such as 0.7, got {_describe(temperature)}"
        )
    max_tokens = params.get("max_output_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        return f"{_PARAMS}.max_output_tokens", (
            f"expected an integer such as 1024, got {_describe(max_tokens)}"
        )
    return None


def _resolve_agent(
    obj: dict[str, Any], default_agent: str | None, known: frozenset[str] | None
) -> str | tuple[str, str]:
    """Return the row's agent name, or (field, problem)."""
    ref = obj.get("agent_ref", _MISSING)
    source = ""
    if ref is _MISSING:
        if default_agent is None:
            return "agent_ref.name", "missing: add agent_ref to the row or pass --agent-name"
        agent = default_agent
        source = " (from --agent-name)"
    elif not isinstance(ref, dict):
        return (
            "agent_ref",
            f'expected an object such as {{"name": "<agent>"}}, got {_describe(ref)}',
        )
    else:
        name = ref.get("name", _MISSING)
        if name is _MISSING:
            return "agent_ref.name", "missing: agent_ref must name the agent that serves this row"
        if not isinstance(name, str) or not name:
            return "agent_ref.name", f"expected a non-empty agent name, got {_describe(name)}"
        agent = name
    if known is not None and agent not in known:
        return "agent_ref.name", f"unknown agent {agent!r}{source}; {_list_agents(known)}"
    return agent


def _list_agents(known: frozenset[str]) -> str:
    if not known:
        return "no agents are configured"
    names = sorted(known)
    listed = ", ".join(names[:_MAX_LISTED_AGENTS])
    more = len(names) - _MAX_LISTED_AGENTS
    suffix = f" and {more} more" if more > 0 else ""
    return f"known agents: {listed}{suffix}; fix the name or configure that agent"


def expand(rows: Iterable[InputRow], *, num_repeats: int | Mapping[str, int]) -> Iterator[Rollout]:
    """Yield ``num_repeats`` rollouts per row, in order a a b b c c, with NeMo Gym indices.

    ``num_repeats`` is an int for every agent, or a map from agent name to count where
    ``"_default"`` (itself defaulting to 1) covers the agents not named. Task indices count
    distinct (agent, line) pairs from 0 in order of first appearance; see the module docstring.
    Raises ``ValueError`` at once if a count is not an int >= 1. Lazy in ``rows``.
    """
    return _expand(rows, _repeats_for(num_repeats))


def _repeats_for(num_repeats: int | Mapping[str, int]) -> Callable[[str], int]:
    def check(name: str, count: object) -> int:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"num_repeats for {name} must be an integer >= 1, got {count!r}")
        return count

    if isinstance(num_repeats, int):
        fixed = check("every agent", num_repeats)
        return lambda _agent: fixed
    counts = {agent: check(repr(agent), count) for agent, count in num_repeats.items()}
    default = counts.pop(_DEFAULT_REPEATS_KEY, 1)
    return lambda agent: counts.get(agent, default)


def _expand(rows: Iterable[InputRow], repeats_for: Callable[[str], int]) -> Iterator[Rollout]:
    person_of: dict[str, bytes] = {}
    with contextlib.closing(TaskIndex()) as tasks:
        for row in rows:
            repeats = repeats_for(row.agent)
            person = person_of.get(row.agent)
            if person is None:
                person = person_of[row.agent] = _person(row.agent)
            digest = hashlib.blake2b(row.raw, digest_size=16, person=person).digest()
            task, first = tasks.assign(digest, repeats)
            for rollout_index in range(first, first + repeats):
                yield Rollout(
                    agent=row.agent,
                    task_index=task,
                    rollout_index=rollout_index,
                    row=row.row,
                    line=row.line,
                )


def _person(agent: str) -> bytes:
    """Blake2b's 16-byte personalisation from the agent name, so each agent has its own tasks.

    Names longer than 16 bytes are hashed down; a collision only merges two agents' identical
    lines into one task index, which still keeps (task, rollout) indices unique.
    """
    encoded = agent.encode()
    if len(encoded) <= 16:
        return encoded
    return hashlib.blake2b(encoded, digest_size=16).digest()


def parse_repeats(values: Sequence[str]) -> dict[str, int]:
    """Parse command-line ``AGENT=N`` options (``_default=N`` for the rest) into a map.

    Raises ``ValueError`` naming the bad option: no ``=``, an empty agent, a count that is not
    a whole number >= 1, or an agent given twice.
    """
    counts: dict[str, int] = {}
    for text in values:
        agent, sep, count_text = text.partition("=")
        agent = agent.strip()
        if not sep or not agent:
            raise ValueError(
                f"num_repeats {text!r}: expected AGENT=N, e.g. "
                "example_multi_step_simple_agent=8 or _default=4"
            )
        try:
            count = int(count_text.strip())
        except ValueError as exc:
            raise ValueError(
                f"num_repeats {text!r}: {count_text.strip()!r} is not a whole number"
            ) from exc
        if count < 1:
            raise ValueError(f"num_repeats {text!r}: the count must be at least 1, got {count}")
        if agent in counts:
            raise ValueError(f"num_repeats {text!r}: {agent!r} is given twice; give it once")
        counts[agent] = count
    return counts


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``: VALUE as JSON if it parses (0.6, true, [1,2]), else as the string.

    Keys are top-level keys of ``responses_create_params`` (``a.b`` is not a nested path).
    Raises ``ValueError`` if there is no ``=`` or the key is empty.
    """
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override {text!r}: expected KEY=VALUE, e.g. temperature=0.6")
    try:
        value: Any = _DECODER.decode(value_text)
    except msgspec.DecodeError:
        value = value_text
    return key, value


def apply_overrides(row: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new row whose ``responses_create_params`` has ``overrides`` merged key by key.

    Shallow: neither ``row`` nor its params dict is changed; other values are shared, not copied.
    Raises ``ValueError`` if the row has no params object (``read_rows`` never yields one).
    """
    params = row.get(_PARAMS)
    if not isinstance(params, dict):
        raise ValueError(f"row has no {_PARAMS} object to override")
    merged = dict(row)
    merged[_PARAMS] = {**params, **overrides}
    return merged
