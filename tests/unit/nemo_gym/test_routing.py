"""NeMo Gym 0.7.0's agent_map: precedence, _default, agent_ref rewrite, and reading rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gymstream.errors import RowError
from gymstream.nemo_gym.rows.reader import InputRow, read_rows
from gymstream.nemo_gym.rows.routing import parse_agent_map, reroute


def _row(agent: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"responses_create_params": {"input": "hi"}}
    if agent is not None:
        row["agent_ref"] = {"type": "responses_api_agents", "name": agent}
    return row


def test_a_row_entry_beats_default_and_default_serves_every_other_row() -> None:
    mapping = {"old": "new", "_default": "fallback"}
    rows = [_row("old"), _row("other"), _row(None)]
    assert [reroute(r, mapping) for r in rows] == ["new", "fallback", "fallback"]
    assert [r["agent_ref"] for r in rows] == [{"name": "new"}, {"name": "fallback"}] * 1 + [
        {"name": "fallback"}
    ]


def test_without_default_only_mapped_rows_change() -> None:
    untouched = _row("other")
    assert reroute(untouched, {"old": "new"}) is None
    assert untouched["agent_ref"] == {"type": "responses_api_agents", "name": "other"}
    assert reroute(_row(None), {"old": "new"}) is None


@pytest.mark.parametrize("bad", ["old", "=new", "old=", " = "])
def test_a_malformed_entry_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="expected AGENT=NEW_AGENT"):
        parse_agent_map([bad])


def test_one_key_mapped_twice_is_refused() -> None:
    assert parse_agent_map(["a=b", "a=b"]) == {"a": "b"}
    with pytest.raises(ValueError, match="mapped twice"):
        parse_agent_map(["a=b", "a=c"])


def test_read_rows_checks_the_rerouted_agent(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [_row("old"), _row("gone")]))
    items = list(
        read_rows(path, default_agent=None, known_agents={"new"}, agent_map={"old": "new"})
    )
    assert isinstance(items[0], InputRow)
    assert (items[0].agent, items[0].row["agent_ref"]) == ("new", {"name": "new"})
    assert isinstance(items[1], RowError)
    assert "unknown agent 'gone'" in str(items[1])
