"""All in one: apply topics, produce, run the agents' workers and the sink in one process.

The counterpart of NeMo Gym's collector. It runs the very functions the separate commands run
(``produce``, ``run_worker``, ``run_sink``), as stages of one ``Supervisor`` (tasks of one event
loop, or worker processes), so what the tests prove for separate processes holds here too.
Workers for an agent start when its first task is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gymstream.kafka.clients import client_options
from gymstream.kafka.topics import ApplyReport, TopicLayout, apply_topics
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.outputs.files import OutputPaths, claim_output, hold_output
from gymstream.nemo_gym.outputs.resume import DEFAULT_MAX_ATTEMPTS, apply_plan, plan_resume
from gymstream.nemo_gym.servers.aggregate_metrics import write_server_metrics
from gymstream.observe.metrics import Metrics
from gymstream.observe.server import observed
from gymstream.produce.producer import ProduceOptions, ProduceReport, produce
from gymstream.produce.waiting import waiting_rollouts
from gymstream.rollout.plan import AgentPlans
from gymstream.settings import KafkaSettings, MetricsSettings, RolloutSettings
from gymstream.sink.loop import SinkReport, run_sink
from gymstream.stage.supervisor import Stopping, Supervisor, TaskStage
from gymstream.worker.launch import AgentWorkers
from gymstream.worker.loop import WorkerStats

__all__ = [
    "CollectOptions",
    "CollectReport",
    "CollectWatch",
    "collect",
    "resume_options",
    "skip_waiting",
]

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


@dataclass(frozen=True)
class CollectOptions:
    """How a collect run runs, beyond what it produces.

    ``worker_processes``: 0 runs each agent's worker in this process; N > 0 spawns N
    ``gymstream worker`` processes per agent (``worker/launch.py``) to use more cores.
    ``metrics`` with a port: this process serves /metrics and /healthz there (its sink and its
    in-process workers); spawned worker processes serve their own on the next ports.
    """

    overwrite: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    worker_processes: int = 0
    metrics: MetricsSettings | None = None


@dataclass
class CollectWatch:
    """What the caller follows and controls while a run goes.

    ``stop`` (SIGTERM/SIGINT): a graceful stop, ``report.interrupted``: production stops, the
    workers settle their rollouts in flight (``shutdown_grace_s``) and commit, the sink writes
    and commits what they published (bounded by the same grace), then ``collect`` returns; the
    same run id resumes exactly (``resume_options``). ``produced`` is filled as production goes
    (live progress reads it); ``workers`` too, per agent of an in-process worker (its model
    outage shows on the progress line); ``on_progress`` gets each sink report, ``on_reject``
    each bad row.
    """

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    produced: ProduceReport | None = None
    workers: dict[str, WorkerStats] = field(default_factory=dict)
    on_progress: Callable[[SinkReport], None] | None = None
    on_reject: Callable[[Any], None] | None = None


async def collect(
    kafka: KafkaSettings,
    layout: TopicLayout,
    plans: AgentPlans,
    options: ProduceOptions,
    output: OutputPaths,
    *,
    settings: RolloutSettings,
    run: CollectOptions | None = None,
    watch: CollectWatch | None = None,
) -> CollectReport:
    """Collect every rollout of ``options.input_path`` into ``output``; see the module doc.

    The stages run on a ``Supervisor``: the sink first, each agent's workers (``plans``) when
    its first task is sent; a worker that dies fails the run; they stop in reverse order.
    """
    run, watch = run or CollectOptions(), watch or CollectWatch()
    port, host = (None, "") if run.metrics is None else (run.metrics.port, run.metrics.host)
    async with contextlib.AsyncExitStack() as held:
        # one writer per output, from before the claim; a refused claim touches no file, no lock
        held.enter_context(hold_output(output, options.run_id, overwrite=run.overwrite))
        observer = await held.enter_async_context(observed(port, host))
        started = time.perf_counter()
        report = CollectReport()
        options = await _prepare(kafka, layout, plans.config, options, output, run, report)
        supervisor = Supervisor(grace_s=settings.worker.shutdown_grace_s)
        workers = AgentWorkers(
            supervisor,
            kafka,
            layout,
            plans,
            settings,
            processes=run.worker_processes,
            metrics=observer,
            metrics_port=port + 1 if port else None,  # the sink keeps the parent's port
            live=watch.workers,
        )
        sink = supervisor.run("sink", _sink(kafka, layout, output, options.run_id, observer, watch))
        produced = watch.produced or ProduceReport(run_id=options.run_id)
        producing = asyncio.create_task(
            produce(
                kafka,
                layout,
                options,
                on_reject=watch.on_reject,
                on_agent=workers.start,
                report=produced,
            ),
            name="produce",
        )
        try:
            await _run(supervisor, sink, producing, workers, watch.stop, report)
            if report.interrupted:
                report.produced = produced
            else:
                config, server, retry = plans.config, settings.server, settings.retry
                await write_server_metrics(config, output, settings=server, retry=retry)
        finally:
            producing.cancel()
            await supervisor.stop(graceful=False)  # already stopped, unless something failed
            report.workers = workers.stats()
            report.elapsed_s = time.perf_counter() - started
        return report


async def _prepare(
    kafka: KafkaSettings,
    layout: TopicLayout,
    config: GymConfig,
    options: ProduceOptions,
    output: OutputPaths,
    run: CollectOptions,
    report: CollectReport,
) -> ProduceOptions:
    """Claim the output (a resume when it is this run's), apply the topics; the options to
    produce with."""
    report.resumed, options = resume_options(
        output, options, overwrite=run.overwrite, max_attempts=run.max_attempts
    )
    report.topics = await apply_topics(client_options(kafka), layout, config.agents)
    if report.resumed:
        options = await skip_waiting(kafka, layout, options)
    return options


def _sink(
    kafka: KafkaSettings,
    layout: TopicLayout,
    output: OutputPaths,
    run_id: str,
    metrics: Metrics | None,
    watch: CollectWatch,
) -> Callable[[Stopping], Awaitable[SinkReport]]:
    async def sink(stopping: Stopping) -> SinkReport:
        return await run_sink(
            kafka,
            layout,
            output,
            run_id,
            stop=stopping.now,
            drain=stopping.drain,
            on_progress=watch.on_progress,
            metrics=metrics,
        )

    return sink


async def _run(
    supervisor: Supervisor,
    sink: TaskStage[SinkReport],
    producing: asyncio.Task[ProduceReport],
    workers: AgentWorkers,
    stop: asyncio.Event,
    report: CollectReport,
) -> None:
    """Produce, then wait for the sink to account for every expected rollout, or for ``stop``:
    then stop producing, let the workers settle, and the sink write what arrived."""
    if await _finished_first(producing, stop):
        report.produced = producing.result()
        if report.produced.stopped_at is not None:
            sink.stopping.now.set()  # --fail-fast: the sink ends with what it has
        for agent in report.produced.expected:
            # a resume may publish nothing for an agent whose rollouts still wait in its task
            # topic (skip_waiting): its workers must run all the same
            await workers.start(agent)
    # the sink ends by itself once every expected rollout is accounted for; a worker that
    # dies early would leave it waiting: the supervisor fails the run then
    if not await supervisor.until(sink, stop):
        report.interrupted = True
        await _stop_producing(producing)
        log.warning(
            "stopping: workers settle their rollouts in flight, the sink writes what arrived"
        )
        await supervisor.stop()  # the workers settle and commit, then the sink drains
    report.sink = sink.result()


async def _finished_first(task: asyncio.Task[Any], stop: asyncio.Event) -> bool:
    """Wait for ``task`` or ``stop``; True when ``task`` is done."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
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
