"""The worker's Kafka loop: take tasks into free slots, run each (``runner``), commit, rebalance.

What one task becomes is ``worker.runner`` (and, purely, ``worker.outcome``); this module owns
the slots, the offsets and the rebalances, as a handler on ``stage.runtime.Stage`` (which starts
and stops the clients and watches in one order) committing through
``stage.commit.WatermarkCommit``.

Hundreds of rollouts run at once per process, whatever the partition count. Offsets are tracked
per partition (``offsets.OffsetTracker``) and committed only up to the lowest offset whose
output is not yet acknowledged by Kafka, so a crash at any point repeats work but never loses a
task. The only source of duplicates in the results topic is that repeat (and a rebalance), and the
sink removes them by rollout id.

Fetching is budgeted: a poll takes at most as many tasks as there are free slots
(``concurrency``); when every slot is taken the worker does not poll, and the consumer's fetch
buffer (bounded by its fetch sizes) waits for the next free slot. Partitions are not paused for
that: aiokafka drops what it has fetched for a paused partition, and fetching it again cost the
broker as much as the rest of the pipeline. Only when rollouts hold every slot for minutes does
an empty poll (partitions paused for it) keep the consumer in its group.

A slot frees when its rollout's output is ready, before Kafka acknowledges it: publishing needs
no model, and holding the slot for the ack cost ~5% of the rate when the model is slow.

On SIGTERM/SIGINT (``stop`` set): stop taking work, let in-flight rollouts finish within the
grace period, commit, leave the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from gymstream.kafka.offsets import OffsetTracker
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.outputs.output_row import EnvironmentServer
from gymstream.observe.metrics import Metrics, WorkerProbe
from gymstream.rollout.agent import Agent
from gymstream.runs.policy import LiveVersions
from gymstream.settings import KafkaSettings, RetrySettings, WorkerSettings
from gymstream.stage.commit import WatermarkCommit
from gymstream.stage.runtime import Stage
from gymstream.stage.watch import StageWatch
from gymstream.worker.failure_log import FailureLog
from gymstream.worker.outage import ModelOutage
from gymstream.worker.outage_notice import OutageNotice
from gymstream.worker.outcome import OutcomeStep, Where
from gymstream.worker.runner import TaskRunner

__all__ = ["WorkerStats", "new_worker_id", "run_worker"]

log = logging.getLogger("gymstream.worker.loop")

MAX_POLL_INTERVAL_MS = 600_000
"""The group drops a consumer that has not polled for this long."""
IDLE_POLL_S = MAX_POLL_INTERVAL_MS / 4000
"""With every slot held this long, the worker makes an empty poll to stay in its group."""


def new_worker_id() -> str:
    """host-pid-random: unique per process, readable in results and logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{random.randrange(16**4):04x}"


@dataclass
class WorkerStats:
    """What one worker did; ``failures`` counts by failure class."""

    taken: int = 0
    succeeded: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    reward_sum: float = 0.0
    commits: int = 0
    outage: ModelOutage | None = None  # the model's outage state, for progress lines (note())

    @property
    def done(self) -> int:
        return self.succeeded + sum(self.failures.values())


class _Worker:
    """Intake, slots and rebalances of one agent's worker, a handler on ``stage.runtime.Stage``
    (clients, watches, stop; commits through ``stage.commit.WatermarkCommit``); ``runner`` does
    each task."""

    def __init__(
        self,
        kafka: KafkaSettings,
        layout: TopicLayout,
        agent: str,
        settings: WorkerSettings,
        live_versions: LiveVersions,
        runner: TaskRunner,
        on_outcome: Callable[[str, float | None, str | None], None] | None,
        metrics: Metrics | None = None,
        stats: WorkerStats | None = None,
    ) -> None:
        self.kafka = kafka
        self.layout = layout
        self.agent = agent
        self.settings = settings
        self.live_versions = live_versions
        self.runner = runner
        self.on_outcome = on_outcome
        self.topic = layout.tasks(agent)
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.stats = stats or WorkerStats()
        self.stats.outage = runner.outage
        self.outage_notice = OutageNotice(layout, agent, runner.outage)  # for `status`
        self.tasks_by_tp: dict[TopicPartition, set[asyncio.Task[None]]] = defaultdict(set)
        self.all_tasks: set[asyncio.Task[None]] = set()
        self.producer: Any = None
        self.consumer: Any = None
        self.commits: WatermarkCommit | None = None  # built once the consumer is
        # bumped when a partition is revoked: work started before belongs to the old owner
        self.generation: Counter[TopicPartition] = Counter()
        self.slot_freed = asyncio.Event()
        # rollouts between taking their task and having their output ready; ``all_tasks`` also
        # holds those still publishing, which need no slot (the model is not waiting on them)
        self.running = 0
        self.record = None if metrics is None else metrics.agent(agent)
        self.watch = None if metrics is None else self._watch(metrics)

    def _watch(self, metrics: Metrics) -> StageWatch:
        """The worker's lag, readiness (a partition, and a model that answers) and gauges."""
        outage = self.runner.outage
        watch = StageWatch(
            metrics,
            f"worker/{self.agent}",
            lambda: self.consumer,
            unassigned=f"no partition of {self.topic} assigned (joining the group, or more "
            "workers than partitions)",
            committed=self.tracker.committed,
            also_ready=lambda: (
                None
                if outage.since is None
                else f"model endpoint down for {outage.now() - outage.since:.0f} s"
            ),
        )
        metrics.watch_worker(
            WorkerProbe(
                self.agent,
                in_flight=lambda: len(self.all_tasks),
                outage_open=lambda: outage.since is not None,
                lag=watch.lag,
            )
        )
        return watch

    # --- the main loop -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Start (producer, consumer, versions, watches), take work until ``stop``, then stop
        in reverse: settle and commit first, while the clients are still open."""
        async with Stage(self.kafka, who=f"worker {self.agent}", stop=stop) as stage:
            self.producer = await stage.producer()
            self.consumer = await stage.consumer(
                group_id=self.layout.worker_group(self.agent),
                topics=[self.topic],
                listener=lambda _: _Rebalance(self),
                missing_topic=f"topic {self.topic} does not exist: create it with `gymstream "
                f"topics apply --agent {self.agent}` (same --topic-prefix), then start the worker",
                max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
                session_timeout_ms=self.settings.session_timeout_ms,
                heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            )
            await stage.start(self.live_versions)
            stage.watch_broker(self.consumer)
            self.commits = WatermarkCommit(
                self.consumer,
                self.tracker,
                session_timeout_s=self.settings.session_timeout_ms / 1000,
            )
            stall = stage.watch_stall(self.commits.session_timeout_s, self._stalled)
            self.commits.tick = stall.tick
            self.runner.freezes.check = stall.tick  # worker/freeze.py
            stage.on_exit(self._shutdown)
            await stage.run_until_stopped(self._intake())
        return self.stats

    async def _intake(self) -> None:
        concurrency = self.settings.concurrency
        interval_s = self.settings.commit_interval_s
        last_commit = last_poll = time.monotonic()
        while True:
            # a slot frees when its rollout's output is ready, not when Kafka acknowledges
            # it; what waits on Kafka is bounded too (at most ``concurrency`` more)
            free = min(concurrency - self.running, 2 * concurrency - len(self.all_tasks))
            if self.runner.outage.paused:
                free = 0  # a model outage: tasks wait in Kafka, not in the failures file
            if free <= 0:
                # Full: leave the fetcher's buffer alone (aiokafka drops what it fetched
                # for a partition that is paused when polled, and fetching it again costs
                # the broker and delays the refill); wait for a slot.
                self.slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval_s):
                        await self.slot_freed.wait()
                if time.monotonic() - last_poll >= IDLE_POLL_S:
                    # rollouts hold every slot for long: an empty poll keeps the consumer
                    # in its group (max.poll.interval), at the price of a re-fetch
                    self.consumer.pause(*self.consumer.assignment())
                    await self.consumer.getmany(timeout_ms=0)
                    self.consumer.resume(*self.consumer.paused())
                    last_poll = time.monotonic()
            else:
                batch = await self.consumer.getmany(
                    timeout_ms=int(interval_s * 1000), max_records=free
                )
                last_poll = time.monotonic()
                for tp, messages in batch.items():
                    for message in messages:
                        self._start(tp, message)
            if time.monotonic() - last_commit >= interval_s:
                await self._commit()
                last_commit = time.monotonic()
                self.runner.failure_log.flush(due_only=True)
                await self.outage_notice.update(self.producer)
                if self.watch is not None:
                    await self.watch.measure_lag()

    def _start(self, tp: TopicPartition, message: Any) -> None:
        self.tracker.start(tp, message.offset)
        self.stats.taken += 1
        self.running += 1
        if self.record is not None:
            self.record.started.inc()
        task = asyncio.create_task(self._process(tp, message, self.generation[tp]))
        self.all_tasks.add(task)
        self.tasks_by_tp[tp].add(task)

        def finished(t: asyncio.Task[None]) -> None:
            self.all_tasks.discard(t)
            self.tasks_by_tp[tp].discard(t)
            self.slot_freed.set()
            if not t.cancelled() and t.exception() is not None:
                log.error("bug in the worker", exc_info=t.exception())

        task.add_done_callback(finished)

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        if self.commits is None:
            return  # not started: nothing taken, nothing to commit
        seconds = await self.commits.commit(only)
        if seconds is None:
            return
        if self.record is not None:
            self.record.commit.observe(seconds)
        self.stats.commits += 1

    def _stalled(self, seconds: float) -> None:
        """The process was frozen past its session timeout: said once (the commit policy's
        ``fenced`` streak); rollouts running through the freeze learn of it (``freezes``)."""
        self.runner.freezes.record(seconds)
        if self.commits is not None:
            self.commits.stalled(seconds)

    async def _shutdown(self) -> None:
        """Stop taking work, settle in-flight rollouts within the grace period, commit (the
        stage then stops the watches, leaves the group and closes the clients)."""
        with contextlib.suppress(KafkaError):
            self.consumer.pause(*self.consumer.assignment())
        if self.all_tasks:
            log.info("settling %d rollouts in flight", len(self.all_tasks))
            await asyncio.wait(set(self.all_tasks), timeout=self.settings.shutdown_grace_s)
        await self._commit()
        if self.watch is not None:
            await self.watch.measure_lag(force=True)  # the final state
        for task in list(self.all_tasks):
            task.cancel()
        if self.all_tasks:
            await asyncio.wait(set(self.all_tasks))
        self.runner.failure_log.flush()
        await self.outage_notice.update(self.producer, stopping=True)

    # --- one message ---------------------------------------------------------------------
    async def _process(self, tp: TopicPartition, message: Any, generation: int) -> None:
        try:
            where = Where(tp.topic, tp.partition, message.offset)
            outgoing = await self.runner.outcome(message.value or b"", where)
        finally:
            self.running -= 1
            self.slot_freed.set()
        self.runner.report(outgoing)
        await self.runner.publish(self.producer, outgoing)
        if generation != self.generation[tp]:
            return  # the partition was revoked meanwhile: its new owner redoes this offset
        self.tracker.done(tp, message.offset)
        failure_class = outgoing.failure_class
        if failure_class is None:
            self.stats.succeeded += 1
            self.stats.reward_sum += outgoing.reward
        else:
            self.stats.failures[failure_class] += 1
        if self.record is not None:
            self.record.finished(failure_class, outgoing.timings, outgoing.usage)
        if self.on_outcome is not None:
            reward = outgoing.reward if failure_class is None else None
            self.on_outcome(self.agent, reward, failure_class)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """On revoke: give in-flight work of those partitions a short grace, commit, let go."""

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        w = self.worker
        pending = {t for tp in revoked for t in w.tasks_by_tp.get(tp, set())}
        if pending:
            await asyncio.wait(pending, timeout=min(5.0, w.settings.shutdown_grace_s))
        await w._commit(only=set(revoked))
        for task in pending:
            task.cancel()
        w.tracker.revoke(revoked)
        for tp in revoked:
            w.generation[tp] += 1
            w.tasks_by_tp.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))


async def run_worker(
    kafka: KafkaSettings,
    layout: TopicLayout,
    agent: str,
    rollout_agent: Agent,
    *,
    model_url: str,
    model_name: str = "",
    model_base_url: str = "",
    environment_server: EnvironmentServer | None = None,
    stop: asyncio.Event,
    settings: WorkerSettings,
    retry: RetrySettings,
    worker_id: str | None = None,
    on_outcome: Callable[[str, float | None, str | None], None] | None = None,
    metrics: Metrics | None = None,
    stats: WorkerStats | None = None,
) -> WorkerStats:
    """Serve one agent until ``stop`` is set; returns what was done.

    ``rollout_agent`` runs each task's rollout (``rollout.connect.open_agent``); ``model_url``
    names the model in failure logs; ``environment_server``: the ``_ng_environment_server``
    stamps of every row (``AgentConfig.environment_stamp``).
    ``on_outcome(agent, reward or None, failure class or None)`` is called after each rollout's
    output is acknowledged by Kafka (used by progress bars). ``metrics``: record into it and
    register the worker's gauges and readiness (``stage.watch.StageWatch``); None records nothing.
    ``stats``: the (new) stats object to fill, which the caller may read while the worker runs
    (live progress). ``model_base_url`` (the resolved base URL, comma-joined when spread)
    and ``model_name`` go on every result: which model produced it.
    """
    step = OutcomeStep(
        agent=agent,
        worker_id=worker_id or new_worker_id(),
        results_topic=layout.results,
        failures_topic=layout.failures,
        max_message_bytes=settings.max_message_bytes,
        environment_server=environment_server,
        model_base_url=model_base_url or model_url,
        model_name=model_name,
    )
    live_versions = LiveVersions(kafka, layout)
    runner = TaskRunner(
        step,
        rollout_agent,
        deadline_s=retry.rollout_deadline_s,
        default_policy_version=settings.policy_version,
        live_version=live_versions.get,
        failure_log=FailureLog(model_url),
        outage=ModelOutage(
            retry.outage_budget_capped_s,
            backoff_initial_s=retry.backoff_initial_s,
            backoff_max_s=retry.backoff_max_s,
        ),
    )
    worker = _Worker(
        kafka, layout, agent, settings, live_versions, runner, on_outcome, metrics, stats
    )
    return await worker.run(stop)
