"""Input rows of the NeMo Gym compatibility tests: the example datasets, as NeMo Gym ships them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["example_rows", "function_call"]

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
