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

from gymstream.kafka.clients import client_options
from gymstream.kafka.topics import ApplyReport, TopicLayout, apply_topics
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.outputs.files import OutputPaths, claim_output, hold_output
from gymstream.nemo_gym.outputs.resume import DEFAULT_MAX_ATTEMPTS, apply_plan, plan_resume
from gymstream.nemo_gym.servers.aggregate_metrics import write_server_metrics
from gymstream.observe.server import observed
from gymstream.produce.producer import ProduceOptions, ProduceReport, produce
from gymstream.produce.waiting import waiting_rollouts
from gymstream.settings import KafkaSettings, MetricsSettings, RolloutSettings
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
    interrupted: bool = False
    """``stop`` was set before the run was complete: what arrived is written, the rest waits
    for a resume with the same run id."""

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
    metrics: MetricsSettings | None = None,
    stop: asyncio.Event | None = None,
    produce_report: ProduceReport | None = None,
    worker_stats: dict[str, WorkerStats] | None = None,
) -> CollectReport:
    """Collect every rollout of ``options.input_path`` into ``output``; see the module doc.

    ``worker_processes``: 0 runs each agent's worker in this process; N > 0 spawns N
    ``gymstream worker`` processes per agent (``processes.py``) to use more cores.
    ``metrics`` with a port: this process serves /metrics and /healthz there (its sink and its
    in-process workers); spawned worker processes serve their own on the next ports.
    ``stop`` (SIGTERM/SIGINT): a graceful stop, ``report.interrupted``: production stops, the
    workers settle their rollouts in flight (``shutdown_grace_s``) and commit, the sink writes
    and commits what they published (bounded by the same grace), then this returns; the same
    run id resumes exactly (``resume_options``). ``produce_report`` is filled as production
    goes (live progress reads it); ``worker_stats`` too, per agent of an in-process worker
    (its model outage shows on the progress line).
    """
    port, host = (None, "") if metrics is None else (metrics.port, metrics.host)
    async with contextlib.AsyncExitStack() as held:
        held.enter_context(hold_output(output))  # one writer per output, from before the claim
        observer = await held.enter_async_context(observed(port, host))
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
                metrics_port=None if not port else port + 1,
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
                    metrics=observer,
                    stats=None
                    if worker_stats is None
                    else worker_stats.setdefault(agent, WorkerStats()),
                ),
                name=f"worker-{agent}",
            )

        stop = stop or asyncio.Event()
        drain_sink = asyncio.Event()
        produced = produce_report or ProduceReport(run_id=options.run_id)
        sink_task = asyncio.create_task(
            run_sink(
                kafka,
                layout,
                output,
                options.run_id,
                stop=stop_sink,
                on_progress=on_progress,
                metrics=observer,
                drain=drain_sink,
            ),
            name="sink",
        )
        producing = asyncio.create_task(
            produce(
                kafka, layout, options, on_reject=on_reject, on_agent=start_agent, report=produced
            ),
            name="produce",
        )
        try:
            if await _finished_first(producing, stop):
                report.produced = producing.result()
                if report.produced.stopped_at is not None:
                    stop_sink.set()
                for agent in report.produced.expected:
                    # a resume may publish nothing for an agent whose rollouts still wait in
                    # its task topic (skip_waiting): its workers must run all the same
                    if agent not in worker_tasks and (
                        spawned is None or agent not in spawned.procs
                    ):
                        await start_agent(agent)
            # the sink ends by itself once every expected rollout is accounted for;
            # a worker that dies early would leave it waiting, so watch them too
            while not sink_task.done() and not stop.is_set():
                dead = [t for t in worker_tasks.values() if t.done()]
                for task in dead:
                    error = task.exception()
                    if error is not None:
                        raise error
                if spawned is not None:
                    spawned.check()
                await _finished_first(sink_task, stop, timeout_s=0.5)
            if not sink_task.done():  # stopped: settle, write what arrived, commit
                report.interrupted = True
                report.produced = produced
                await _stop_producing(producing)
                grace_s = settings.worker.shutdown_grace_s
                await _settle(stop_workers, worker_tasks, report, spawned)
                drain_sink.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(sink_task), grace_s)
                stop_sink.set()
            report.sink = await sink_task
            if not report.interrupted:
                await write_server_metrics(
                    config, output, settings=settings.server, retry=settings.retry
                )
        finally:
            producing.cancel()
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


async def _finished_first(
    task: asyncio.Task[Any], stop: asyncio.Event, *, timeout_s: float | None = None
) -> bool:
    """Wait for ``task`` or ``stop`` (or ``timeout_s``); True when ``task`` is done."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    return task.done()


async def _stop_producing(producing: asyncio.Task[ProduceReport]) -> None:
    """Cancel production (what is sent stays in the task topics: a resume skips it)."""
    producing.cancel()
    try:
        await producing
    except asyncio.CancelledError:
        pass
    except Exception:  # stopping anyway: say what production had run into
        log.exception("production failed while stopping")


async def _settle(
    stop_workers: asyncio.Event,
    worker_tasks: Mapping[str, asyncio.Task[WorkerStats]],
    report: CollectReport,
    spawned: WorkerProcesses | None,
) -> None:
    """Stop the workers: each settles its rollouts in flight within its grace, commits and
    leaves its group; worker processes get SIGTERM and do the same."""
    log.warning("stopping: workers settle their rollouts in flight, the sink writes what arrived")
    stop_workers.set()
    for agent, task in worker_tasks.items():
        try:
            report.workers[agent] = await task
        except Exception:
            log.exception("the worker for %s failed while stopping", agent)
    if spawned is not None:
        await asyncio.to_thread(spawned.stop)
