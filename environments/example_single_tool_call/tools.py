"""The example_single_tool_call tool: get_weather, with NeMo Gym 0.7.0's model and answer text."""

from __future__ import annotations

from typing import Any

import pydantic

from gymstream.nemo_gym.servers.tool_answers import typed_tool

__all__ = ["TOOLS", "GetWeatherRequest", "get_weather"]


class GetWeatherRequest(pydantic.BaseModel):
    """NeMo Gym's request model: ``city`` must be a string; other keys are ignored."""

    city: str


def get_weather(session: Any, body: GetWeatherRequest) -> dict[str, str]:
    """``{"city": <city>, "weather_description": "The weather in <city> is cold."}``."""
    return {"city": body.city, "weather_description": f"The weather in {body.city} is cold."}


TOOLS = {"get_weather": typed_tool(GetWeatherRequest, get_weather)}
