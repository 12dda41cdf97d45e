"""Input rows of the NeMo Gym compatibility tests: the example datasets, as NeMo Gym ships them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "NOT_VERIFIER_FIELDS",
    "example_rows",
    "function_call",
    "rows_of",
    "trajectory",
]

_ENVIRONMENTS = Path(__file__).resolve().parent.parent / "environments"


def example_rows(environment: str) -> list[dict[str, Any]]:
    """The rows of ``environments/<environment>/data/example.jsonl`` (NeMo Gym's example set)."""
    path = _ENVIRONMENTS / environment / "data" / "example.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def function_call(name: str, arguments: str) -> dict[str, Any]:
    """A Responses ``function_call`` output item calling ``name`` with the raw ``arguments``."""
    return {
        "type": "function_call",
        "call_id": "c",
        "name": name,
        "arguments": arguments,
        "id": "fc",
        "status": "completed",
    }


# What the collector or the request adds, not the verifier: compared separately or not at all.
NOT_VERIFIER_FIELDS = {"responses_create_params", "response"}


def rows_of(environment: str) -> list[dict[str, Any]]:
    """The example rows, plus for example_single_tool_call two that must score 0.0."""
    rows = example_rows(environment)
    if environment == "example_single_tool_call":
        # the scripted model calls no tool under tool_choice "none": NeMo Gym rewards 0.0 then
        for row in example_rows(environment)[:2]:
            params = {**row["responses_create_params"], "tool_choice": "none"}
            rows.append({**row, "responses_create_params": params})
    return rows


def trajectory(response: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Per item: type, and for calls name + decoded arguments, for outputs the exact text."""
    items: list[tuple[Any, ...]] = []
    for item in response["output"]:
        if item["type"] == "function_call":
            items.append(("function_call", item["name"], json.loads(item["arguments"])))
        elif item["type"] == "function_call_output":
            items.append(("function_call_output", item["output"]))
        else:
            items.append((item["type"],))
    return items
