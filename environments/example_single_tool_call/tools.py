"""The example_single_tool_call tool: get_weather, with NeMo Gym's exact answer text."""

from __future__ import annotations

from typing import Any

__all__ = ["TOOLS", "get_weather"]


def get_weather(session: Any, arguments: dict[str, Any]) -> dict[str, str]:
    """``{"city": <city>, "weather_description": "The weather in <city> is cold."}``.

    Raises ``ValueError`` when ``city`` is missing or not a string; the agent shows the model
    the message, as NeMo Gym shows its validation error.
    """
    city = arguments.get("city")
    if not isinstance(city, str):
        raise ValueError(f"get_weather needs 'city' as a string, got {city!r}")
    return {"city": city, "weather_description": f"The weather in {city} is cold."}


TOOLS = {"get_weather": get_weather}
