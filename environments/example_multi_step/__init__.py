"""example_multi_step: look up synonym values with tools, then extract them in the listed order."""

from __future__ import annotations

from environments.example_multi_step.tools import TOOLS
from environments.example_multi_step.verifier import verify
from gymstream.rollout.environment import SimpleEnvironment

__all__ = ["ENVIRONMENT"]

ENVIRONMENT = SimpleEnvironment(name="example_multi_step", tools=TOOLS, verify_fn=verify)
