"""example_single_tool_call: one get_weather tool; 1.0 when the model called it, else 0.0."""

from __future__ import annotations

from environments.example_single_tool_call.tools import TOOLS
from environments.example_single_tool_call.verifier import verify
from gymstream.rollout.environment import SimpleEnvironment

__all__ = ["ENVIRONMENT"]

ENVIRONMENT = SimpleEnvironment(name="example_single_tool_call", tools=TOOLS, verify_fn=verify)
