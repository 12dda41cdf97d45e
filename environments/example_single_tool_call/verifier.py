"""The example_single_tool_call verifier: 1.0 when the model called get_weather, else 0.0."""

from __future__ import annotations

from typing import Any

__all__ = ["verify"]


async def verify(row: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """NeMo Gym 0.7.0's rule: reward 1.0 when ``response.output`` holds a ``function_call``
    named ``get_weather`` (whatever its arguments or output), else 0.0; no other metrics."""
    called = any(
        isinstance(item, dict)
        and item.get("type") == "function_call"
        and item.get("name") == "get_weather"
        for item in response.get("output") or []
    )
    return {"reward": float(called)}
