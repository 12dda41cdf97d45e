"""Every FailureClass has one row in docs/guarantees.md, terminal as its error is retriable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gymstream import errors
from gymstream.wire.messages import FailureClass

GUARANTEES = Path(__file__).resolve().parents[3] / "docs" / "guarantees.md"
_ROW = re.compile(r"^\| `([a-z0-9_]+)` \| [^|]+ \| (yes|no) \| (yes|no) \|$")


def documented() -> dict[str, tuple[str, str]]:
    """class -> (terminal, republished), from the rows of the failure-class table."""
    section = GUARANTEES.read_text().split("## Failure classes", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            match = _ROW.match(line)
            assert match, f"not a one-class row of the table: {line}"
            assert match[1] not in rows, f"{match[1]} has two rows"
            rows[match[1]] = (match[2], match[3])
    return rows


def test_every_failure_class_has_exactly_one_row() -> None:
    rows = set(documented())
    members = {member.value for member in FailureClass}
    assert not members - rows, f"no row in {GUARANTEES.name} for {sorted(members - rows)}"
    assert not rows - members, f"rows in {GUARANTEES.name} for no class: {sorted(rows - members)}"


def test_the_table_says_retry_failures_republishes_exactly_the_non_terminal_classes() -> None:
    for name, (terminal, republished) in documented().items():
        assert republished == ("no" if terminal == "yes" else "yes"), name


@pytest.mark.parametrize(
    "error",
    [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.GymstreamError)
    ],
)
def test_each_error_class_is_documented_terminal_as_it_is_retriable(
    error: type[errors.GymstreamError],
) -> None:
    terminal, _ = documented()[error.failure_class]
    assert terminal == ("no" if error.retriable else "yes"), error.__name__
