"""The rollout client's own workers: started when asked, or when nothing serves an agent.

The one seam between the client and the worker runtime. It starts an agent's workers with
collect's own code (``worker.launch.AgentWorkers`` on a ``stage.supervisor.Supervisor``: a task
of this event loop, or ``gymstream worker`` processes with the agent's plan on their stdin) and
stops them the same way (settle the rollouts in flight, commit, leave the group).

"Nothing serves an agent" is read from Kafka: the agent's worker group has no member
(``status.facts.StatusProbe``), so workers running anywhere (``gymstream worker`` on other
machines) are used as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.rollout.plan import AgentPlans, ModelOptions
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.stage.supervisor import Supervisor
from gymstream.status.facts import StatusProbe
from gymstream.worker.launch import AgentWorkers
from gymstream.worker.loop import WorkerStats

__all__ = ["OwnWorkers", "WorkerMode", "unserved_agents"]

log = logging.getLogger("gymstream.client")

WorkerMode = Literal["auto", "always", "never"]
"""``auto``: start workers for the agents no worker serves; ``always``: for every agent of a
batch; ``never``: use the workers running elsewhere only."""


async def unserved_agents(
    kafka: KafkaSettings, layout: TopicLayout, agents: Iterable[str]
) -> list[str]:
    """The agents whose worker group has no member right now."""
    idle: list[str] = []
    async with StatusProbe(kafka, layout) as probe:
        for agent in sorted(set(agents)):
            facts = await probe.group_facts(layout.worker_group(agent))
            if not facts.members:
                idle.append(agent)
    return idle


class OwnWorkers:
    """The workers a client started (per agent, once), on collect's own machinery: one
    ``stage.supervisor.Supervisor`` and ``worker.launch.AgentWorkers`` (in-process tasks or
    ``gymstream worker --plan-stdin`` children); ``stop`` ends them all, gracefully."""

    def __init__(
        self,
        kafka: KafkaSettings,
        layout: TopicLayout,
        config: GymConfig,
        *,
        settings: RolloutSettings,
        processes: int = 0,
        concurrency: int | None = None,
        model_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._kafka, self._layout, self._settings = kafka, layout, settings
        options = ModelOptions(**dict(model_overrides or {}))
        self._plans = AgentPlans(config, options, settings.model, concurrency)
        self._processes = processes
        self._ensuring = asyncio.Lock()  # runs in flight together (ahead mode) start one set
        self._open()

    def _open(self) -> None:
        self._supervisor = Supervisor(grace_s=self._settings.worker.shutdown_grace_s)
        self._workers = AgentWorkers(
            self._supervisor,
            self._kafka,
            self._layout,
            self._plans,
            self._settings,
            processes=self._processes,
        )

    @property
    def agents(self) -> list[str]:
        """The agents this client runs workers for."""
        return sorted(self._workers.started)

    async def ensure(self, agents: Iterable[str], mode: WorkerMode) -> list[str]:
        """Start workers for ``agents`` as ``mode`` says; returns the agents started now."""
        async with self._ensuring:
            return await self._ensure(agents, mode)

    async def _ensure(self, agents: Iterable[str], mode: WorkerMode) -> list[str]:
        wanted = sorted(set(agents) - set(self.agents))
        if mode == "never" or not wanted:
            return []
        if mode == "auto":
            wanted = await unserved_agents(self._kafka, self._layout, wanted)
        for agent in wanted:
            await self._workers.start(agent)  # an unknown agent fails here, in the caller
        if wanted:
            where = "in-process" if self._processes == 0 else "in worker processes"
            log.info("no worker serves %s: starting this client's own, %s", wanted, where)
        return wanted

    def check(self) -> None:
        """Raise the error of a worker that ended on its own (it would leave rows waiting)."""
        self._supervisor.check()

    async def stop(self) -> dict[str, WorkerStats]:
        """Stop every worker: each settles its rollouts in flight, commits and leaves."""
        await self._supervisor.stop()
        stats = self._workers.stats()
        self._open()  # a client can start workers again after a stop
        return stats
