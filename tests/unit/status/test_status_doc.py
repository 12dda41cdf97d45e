"""docs/status.md documents every field of the --json document, and only those."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import msgspec

from gymstream.status import report

DOC = (Path(__file__).resolve().parents[3] / "docs" / "status.md").read_text("utf-8")
STRUCTS: list[type[msgspec.Struct]] = [
    report.StatusDocument,
    report.RunStatus,
    report.AgentStatus,
    report.GroupStatus,
    report.MemberStatus,
    report.SinkStatus,
    report.TrainerStatus,
]


def documented() -> dict[str, list[tuple[str, str]]]:
    """Per ``### Struct`` section of the JSON part: its (field, type) rows, in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in DOC.split("## The JSON document", 1)[1].splitlines():
        if line.startswith("### "):
            current = sections.setdefault(line[4:].strip(), [])
        elif current is not None and (row := re.match(r"\| `(\w+)` \| ([^|]+) \|", line)):
            current.append((row[1], row[2].strip()))
    return sections


def doc_type(tp: Any) -> str:
    """How the doc spells a field's type."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType) and len(args) == 1:
        return f"{doc_type(args[0])} or null"
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {doc_type(args[0])}"
    if origin is dict:
        return "object"
    return {str: "string", int: "int", bool: "bool"}.get(tp, getattr(tp, "__name__", str(tp)))


def test_every_struct_has_a_section_naming_its_fields_in_order_with_their_types() -> None:
    sections = documented()
    assert set(sections) == {s.__name__ for s in STRUCTS}
    for struct in STRUCTS:
        hints = msgspec.structs.fields(struct)
        expected = [(f.name, doc_type(f.type)) for f in hints]
        assert sections[struct.__name__] == expected, struct.__name__


def test_the_documented_schema_version_is_the_code_s() -> None:
    assert ("schema_version", "int") in documented()["StatusDocument"]
    assert f"| `schema_version` | int | {report.SCHEMA_VERSION} |" in DOC
