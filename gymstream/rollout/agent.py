"""The agent protocol: what a worker runs for one task, ``Agent.run(row) -> RolloutResult``.

Two implementations, and the worker knows neither:

- ``LoopAgent``: the agent loop in this process (NeMo Gym's ``simple_agent``), over a native
  environment or a NeMo Gym resources server (``rollout.sessions``);
- ``nemo_gym.servers.agent.RemoteAgent``: a NeMo Gym server's ``POST /run`` runs the whole
  rollout.

Both check the verify result's reward the same way (``nemo_gym.outputs.result.numeric_reward``)
and raise typed ``GymstreamError``s for what went wrong; which one an agent gets is its
configuration's business (``rollout.connect.open_agent``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gymstream.nemo_gym.outputs.result import RolloutResult
from gymstream.rollout.loop import DEFAULT_MAX_STEPS, run_loop
from gymstream.rollout.model.client import ModelClient
from gymstream.rollout.sessions import Sessions

__all__ = ["Agent", "LoopAgent"]


class Agent(Protocol):
    """Runs one rollout of a NeMo Gym row; raises (typed) when it cannot give a result."""

    async def run(self, row: dict[str, Any]) -> RolloutResult: ...


@dataclass(frozen=True)
class LoopAgent:
    """The in-process agent loop with its environment, model and limits bound."""

    env: Sessions
    model: ModelClient
    model_name: str
    max_steps: int = DEFAULT_MAX_STEPS
    skip_verification_reward: float | None = None  # NeMo Gym's skip_verification

    async def run(self, row: dict[str, Any]) -> RolloutResult:
        return await run_loop(
            row,
            self.env,
            self.model,
            model_name=self.model_name,
            max_steps=self.max_steps,
            skip_verification_reward=self.skip_verification_reward,
        )
