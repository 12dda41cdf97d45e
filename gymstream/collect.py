"""All in one: apply topics, produce, run the agents' workers and the sink in one process.

The counterpart of NeMo Gym's collector. It runs the very functions the separate commands run
(``produce``, ``run_worker``, ``run_sink``), as tasks of one event loop, so what the tests prove
for separate processes holds here too. Workers for an agent start when its first task is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gymstream.config import GymConfig
from gymstream.kafka.clients import client_options
from gymstream.kafka.topics import ApplyReport, TopicLayout, apply_topics
from gymstream.nemo.outputs import OutputPaths, claim_output, hold_output
from gymstream.nemo.resume import DEFAULT_MAX_ATTEMPTS, apply_plan, plan_resume
from gymstream.produce.producer import ProduceOptions, ProduceReport, produce
from gymstream.produce.waiting import waiting_rollouts
from gymstream.rollout.aggregate import write_server_metrics
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.sink.loop import SinkReport, run_sink
from gymstream.worker.loop import WorkerStats
from gymstream.worker.processes import WorkerProcesses
from gymstream.worker.serve import serve_agent

__all__ = ["CollectReport", "collect", "resume_options", "skip_waiting"]

log = logging.getLogger("gymstream.collect")


@dataclass
class CollectReport:
    """What a collect run did, stage by stage."""

    topics: ApplyReport | None = None
    produced: ProduceReport | None = None
    sink: SinkReport | None = None
    workers: dict[str, WorkerStats] = field(default_factory=dict)
    resumed: bool = False
    elapsed_s: float = 0.0

    @property
    def missing(self) -> int:
        """Rollouts expected but neither written nor failed (0 on a complete run)."""
        if self.sink is None or self.sink.expected_total is None:
            return -1
        return max(0, self.sink.expected_total - self.sink.accounted)


def resume_options(
    output: OutputPaths,
    options: ProduceOptions,
    *,
    overwrite: bool,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> tuple[bool, ProduceOptions]:
    """Claim ``output`` for ``options.run_id``; return (resumed, the options to produce with).

    A fresh output (or ``overwrite``) is claimed and ``options`` come back unchanged. When the
    output already belongs to this run, it is a resume: what it holds is skipped, non-terminal
    failures get their next attempt (``nemo.resume``), and the plan is applied to the files.
    Raises ``GymstreamError`` when the output belongs to another run and ``overwrite`` is off.
    """
    if not claim_output(output, options.run_id, overwrite=overwrite):
        return False, options
    plan = plan_resume(output, options.run_id, max_attempts=max_attempts)
    apply_plan(output, plan)
    resumed = dataclasses.replace(
        options, skip_rollouts=frozenset(plan.done), attempts=plan.attempts
    )
    return True, resumed


async def skip_waiting(
    kafka: KafkaSettings, layout: TopicLayout, options: ProduceOptions
) -> ProduceOptions:
    """A resume's options that also skip the run's rollouts still waiting in the task topics
    (they would run twice); rollouts being retried are kept: their waiting task is of an
    earlier attempt, whose outcome the sink ignores."""
    waiting = await waiting_rollouts(kafka, layout, options.known_agents, options.run_id)
    waiting -= set(options.attempts)
    if not waiting:
        return options
    log.info("resume: %d rollouts still wait in the task topics: not published again", len(waiting))
    return dataclasses.replace(options, skip_rollouts=frozenset(options.skip_rollouts) | waiting)


async def collect(
    kafka: KafkaSettings,
    layout: TopicLayout,
    config: GymConfig,
    options: ProduceOptions,
    output: OutputPaths,
    *,
    settings: RolloutSettings,
    model_overrides: Mapping[str, Any] | None = None,
    concurrency: int | None = None,
    overwrite: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    worker_processes: int = 0,
    on_progress: Callable[[SinkReport], None] | None = None,
    on_reject: Callable[[Any], None] | None = None,
) -> CollectReport:
    """Collect every rollout of ``options.input_path`` into ``output``; see the module doc.

    ``worker_processes``: 0 runs each agent's worker in this process; N > 0 spawns N
    ``gymstream worker`` processes per agent (``processes.py``) to use more cores.
    """
    with hold_output(output):  # one writer per output, from before the claim
        started = time.perf_counter()
        report = CollectReport()
        report.resumed, options = resume_options(
            output, options, overwrite=overwrite, max_attempts=max_attempts
        )
        report.topics = await apply_topics(client_options(kafka), layout, config.agents)
        if report.resumed:
            options = await skip_waiting(kafka, layout, options)

        stop_workers = asyncio.Event()
        stop_sink = asyncio.Event()
        worker_tasks: dict[str, asyncio.Task[WorkerStats]] = {}

        spawned = (
            WorkerProcesses(
                kafka,
                layout,
                config,
                per_agent=worker_processes,
                concurrency=concurrency,
                model_overrides=model_overrides,
            )
            if worker_processes > 0
            else None
        )

        async def start_agent(agent: str) -> None:
            config.agent(agent)  # an unknown agent fails here, in the caller
            if spawned is not None:
                spawned.start(agent)
                return
            worker_tasks[agent] = asyncio.create_task(
                serve_agent(
                    kafka,
                    layout,
                    config,
                    agent,
                    stop=stop_workers,
                    settings=settings,
                    model_overrides=model_overrides,
                    concurrency=concurrency,
                ),
                name=f"worker-{agent}",
            )

        sink_task = asyncio.create_task(
            run_sink(
                kafka, layout, output, options.run_id, stop=stop_sink, on_progress=on_progress
            ),
            name="sink",
        )
        try:
            report.produced = await produce(
                kafka, layout, options, on_reject=on_reject, on_agent=start_agent
            )
            if report.produced.stopped_at is not None:
                stop_sink.set()
            # the sink ends by itself once every expected rollout is accounted for;
            # a worker that dies early would leave it waiting, so watch them too
            while not sink_task.done():
                dead = [t for t in worker_tasks.values() if t.done()]
                for task in dead:
                    error = task.exception()
                    if error is not None:
                        raise error
                if spawned is not None:
                    spawned.check()
                await asyncio.wait({sink_task}, timeout=0.5)
            report.sink = sink_task.result()
            await write_server_metrics(
                config, output, settings=settings.server, retry=settings.retry
            )
        finally:
            stop_sink.set()
            stop_workers.set()
            if not sink_task.done():
                with contextlib.suppress(Exception):
                    report.sink = await sink_task
            for agent, task in worker_tasks.items():
                with contextlib.suppress(Exception):
                    report.workers[agent] = await task
            if spawned is not None:
                await asyncio.to_thread(spawned.stop)
            report.elapsed_s = time.perf_counter() - started
        return report
