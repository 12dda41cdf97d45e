"""Start an agent's workers on a ``Supervisor`` when its first task is sent: in this process, or
as ``gymstream worker`` processes (``collect --worker-processes N``: one Python process per core).

A worker process is CPU-bound at roughly 1,300 rollouts/s on one core (docs/performance.md); in
one process, ``collect`` shares that core with its producer and sink. Spawning ``gymstream
worker`` processes runs exactly the code of the separate command, spread over the cores. They
inherit the environment (Kafka security settings) and get the agent's plan (``AgentPlan``: its
configuration, resolved model endpoint with its API key, concurrency) serialized on their
standard input (``--plan-stdin``), never as flags or a file; the pipe then stays open and its
end stops them with their parent (``stage.supervisor``). SIGTERM stops them gracefully (settle,
commit, leave the group).

Metrics: with ``metrics_port`` P, the children serve /metrics and /healthz on P, P+1, ... in the
order they start (``collect --metrics-port`` passes its own port + 1: the parent keeps its port
for the sink); each child is one Prometheus target. In-process workers record into ``metrics``.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gymstream.kafka.topics import TopicLayout
from gymstream.observe.metrics import Metrics
from gymstream.rollout.plan import AgentPlan, AgentPlans
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.stage.supervisor import Stopping, Supervisor, TaskStage
from gymstream.worker.loop import WorkerStats
from gymstream.worker.serve import serve_agent

__all__ = ["AgentWorkers", "worker_argv"]

GROUP = "workers"
"""The Supervisor group of every worker: they stop together, before the stages started first."""


def worker_argv(
    plan: AgentPlan, kafka: KafkaSettings, layout: TopicLayout, *, metrics_port: int | None
) -> list[str]:
    """The command of one worker process for ``plan`` (the plan itself goes to its stdin)."""
    argv = [sys.executable, "-m", "gymstream.cli.main", "worker", "--agent", plan.name]
    argv += ["--plan-stdin", "--bootstrap", kafka.bootstrap, "--topic-prefix", layout.prefix]
    argv += ["--namespace", layout.namespace]  # the run's scope: docs/scopes.md
    argv.append("--no-progress")  # the end of a child's log is what a failure shows
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    return argv


@dataclass
class AgentWorkers:
    """Each agent's workers, started once on ``supervisor`` (``start``, e.g. as produce's
    ``on_agent``). ``processes`` 0: one worker task per agent in this process; N: N processes."""

    supervisor: Supervisor
    kafka: KafkaSettings
    layout: TopicLayout
    plans: AgentPlans
    settings: RolloutSettings
    processes: int = 0
    metrics: Metrics | None = None
    metrics_port: int | None = None  # the next child's
    live: dict[str, WorkerStats] = field(default_factory=dict)  # in-process workers', as they go
    started: dict[str, list[TaskStage[WorkerStats]]] = field(default_factory=dict)

    async def start(self, agent: str) -> None:
        """Start ``agent``'s workers unless they run; ConfigError (named) for an unknown agent
        or a model that does not validate, raised here, in the caller."""
        if agent in self.started:
            return
        plan = self.plans.plan(agent)
        tasks = self.started[agent] = []
        if self.processes == 0:
            tasks.append(self.supervisor.run(f"worker for {agent}", self._serve(plan), group=GROUP))
            return
        for i in range(self.processes):
            argv = worker_argv(plan, self.kafka, self.layout, metrics_port=self.metrics_port)
            if self.metrics_port is not None:
                self.metrics_port += 1
            name = f"worker process {i} for {agent}"
            self.supervisor.spawn(name, argv, stdin=plan.to_json() + b"\n", group=GROUP)

    def _serve(self, plan: AgentPlan) -> Callable[[Stopping], Awaitable[WorkerStats]]:
        async def serve(stopping: Stopping) -> WorkerStats:
            # the worker's stop is a drain: it settles what is in flight within its own grace
            return await serve_agent(
                self.kafka,
                self.layout,
                plan,
                stop=stopping.drain,
                settings=self.settings,
                metrics=self.metrics,
                stats=self.live.setdefault(plan.name, WorkerStats()),
            )

        return serve

    def stats(self) -> dict[str, WorkerStats]:
        """What each in-process worker did (those that ended with stats)."""
        done: dict[str, WorkerStats] = {}
        for agent, tasks in self.started.items():
            for task in tasks:
                if task.done() and not task.task.cancelled() and task.task.exception() is None:
                    done[agent] = task.result()
        return done
