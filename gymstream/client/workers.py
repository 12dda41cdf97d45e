"""The rollout client's own workers: started when asked, or when nothing serves an agent.

The one seam between the client and the worker runtime. It starts an agent's workers exactly as
``collect`` does (``worker.serve.serve_agent`` as a task of this event loop, or ``gymstream
worker`` processes through ``worker.processes.WorkerProcesses``) and stops them the same way
(settle the rollouts in flight, commit, leave the group). When the stage Supervisor lands, only
this module changes.

"Nothing serves an agent" is read from Kafka: the agent's worker group has no member
(``status.facts.StatusProbe``), so workers running anywhere (``gymstream worker`` on other
machines) are used as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.status.facts import StatusProbe
from gymstream.worker.loop import WorkerStats
from gymstream.worker.processes import WorkerProcesses
from gymstream.worker.serve import serve_agent

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
    """The workers a client started (per agent, once); ``stop`` ends them all."""

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
        self._kafka, self._layout, self._config = kafka, layout, config
        self._settings = settings
        self._concurrency = concurrency
        self._model_overrides = model_overrides
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[WorkerStats]] = {}
        self._spawned = (
            WorkerProcesses(
                kafka,
                layout,
                config,
                per_agent=processes,
                concurrency=concurrency,
                model_overrides=model_overrides,
            )
            if processes > 0
            else None
        )

    @property
    def agents(self) -> list[str]:
        """The agents this client runs workers for."""
        spawned = list(self._spawned.procs) if self._spawned is not None else []
        return sorted({*self._tasks, *spawned})

    async def ensure(self, agents: Iterable[str], mode: WorkerMode) -> list[str]:
        """Start workers for ``agents`` as ``mode`` says; returns the agents started now."""
        wanted = sorted(set(agents) - set(self.agents))
        if mode == "never" or not wanted:
            return []
        if mode == "auto":
            wanted = await unserved_agents(self._kafka, self._layout, wanted)
        for agent in wanted:
            self._start(agent)
        if wanted:
            where = "in-process" if self._spawned is None else "in worker processes"
            log.info("no worker serves %s: starting this client's own, %s", wanted, where)
        return wanted

    def _start(self, agent: str) -> None:
        self._config.agent(agent)  # an unknown agent fails here, in the caller
        if self._spawned is not None:
            self._spawned.start(agent)
            return
        self._tasks[agent] = asyncio.create_task(
            serve_agent(
                self._kafka,
                self._layout,
                self._config,
                agent,
                stop=self._stop,
                settings=self._settings,
                model_overrides=self._model_overrides,
                concurrency=self._concurrency,
            ),
            name=f"client-worker-{agent}",
        )

    def check(self) -> None:
        """Raise the error of a worker that ended on its own (it would leave rows waiting)."""
        for agent, task in self._tasks.items():
            if task.done():
                error = task.exception()
                if error is not None:
                    raise error
                raise RuntimeError(f"the client's worker for {agent} stopped unexpectedly")
        if self._spawned is not None:
            self._spawned.check()

    async def stop(self) -> dict[str, WorkerStats]:
        """Stop every worker: each settles its rollouts in flight, commits and leaves."""
        self._stop.set()
        stats: dict[str, WorkerStats] = {}
        for agent, task in self._tasks.items():
            with contextlib.suppress(Exception):
                stats[agent] = await task
        self._tasks.clear()
        if self._spawned is not None:
            await asyncio.to_thread(self._spawned.stop)
        self._stop = asyncio.Event()
        return stats
