"""Read a NeMo Gym JSONL dataset into validated rows: one row or one error per line.

``read_rows`` streams the file: it holds one line at a time (never more than ``max_row_bytes``
of it), so memory does not grow with the file. Each bad line comes out as a ``RowError`` (not
raised) naming file, line, field and what to do, so the caller can count it, write it to a
rejects file and go on, or stop when failing fast. This module reads lines (size, encoding,
JSON); ``validation`` checks the fields of a decoded row; ``rollouts.expand`` turns rows into
rollouts.

Rules a caller must know:

- Line numbers are 1-based physical lines of the file.
- Blank lines (only spaces, tabs, CR, LF) are not rows: they are skipped without an error.
- ``limit=N`` reads only the first N physical lines of the file, blank ones included, like
  NeMo Gym's ``limit`` and ``head -n N``; bad lines among them are reported, not replaced.
- One error per bad line: the first problem found.
- A UTF-8 byte order mark at the start of the file is ignored.
- Optional request keys that hold ``null`` count as unset, as in the OpenAI API.
- A row's agent is ``agent_ref.name``; ``default_agent`` serves only rows with no ``agent_ref``.
- ``agent_map`` (NeMo Gym's, ``gymstream.nemo_gym.rows.routing``) re-routes a row before it is
  checked.
"""

from __future__ import annotations

import codecs
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Final

import msgspec

from gymstream.errors import RowError
from gymstream.nemo_gym.rows.routing import reroute
from gymstream.nemo_gym.rows.validation import LINE_FIELD, check_row, resolve_agent

__all__ = ["DEFAULT_MAX_ROW_BYTES", "InputRow", "read_rows"]

DEFAULT_MAX_ROW_BYTES: Final = 32 * 1024 * 1024

_JSON_WHITESPACE: Final = b" \t\r\n"
_SKIP_CHUNK_BYTES: Final = 64 * 1024
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


def read_rows(
    path: Path,
    *,
    default_agent: str | None,
    known_agents: Collection[str] | None,
    limit: int | None = None,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    agent_map: Mapping[str, str] | None = None,
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
    return _read_rows(Path(path), default_agent, known, limit, max_row_bytes, agent_map or {})


def _read_rows(
    path: Path,
    default_agent: str | None,
    known: frozenset[str] | None,
    limit: int | None,
    max_row_bytes: int,
    agent_map: Mapping[str, str],
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
            except RecursionError:
                yield RowError(path, line_no, LINE_FIELD, _NESTED_TOO_DEEPLY)
                continue
            found = check_row(obj)
            if found is None and agent_map:
                reroute(obj, agent_map)
            if found is None:
                agent_or_error = resolve_agent(obj, default_agent, known)
                if isinstance(agent_or_error, str):
                    yield InputRow(line=line_no, row=obj, agent=agent_or_error, raw=raw)
                    continue
                found = agent_or_error
            yield RowError(path, line_no, *found)


_NESTED_TOO_DEEPLY = (
    "nested too deeply: JSON this deep cannot be read (Python's recursion limit); flatten the row"
)


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
