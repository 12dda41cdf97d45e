"""The worker's Kafka loop: take tasks into free slots, run each (``runner``), commit, rebalance.

What one task becomes is ``worker.runner`` (and, purely, ``worker.outcome``); this module owns
the consumer, the slots, the offsets and the group membership.

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
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, build_producer
from gymstream.kafka.offsets import OffsetTracker
from gymstream.kafka.topics import TopicLayout
from gymstream.kafka.watch import watch_consumer
from gymstream.nemo_gym.config.agents import AgentConfig
from gymstream.nemo_gym.servers.agent import RemoteAgent
from gymstream.observe.metrics import Metrics
from gymstream.rollout.environment import AnyEnvironment
from gymstream.rollout.model.client import ModelClient
from gymstream.runs.policy import LiveVersions
from gymstream.settings import KafkaSettings, RetrySettings, WorkerSettings
from gymstream.worker.failure_log import FailureLog
from gymstream.worker.outage import ModelOutage
from gymstream.worker.outcome import OutcomeStep, Where
from gymstream.worker.runner import TaskRunner
from gymstream.worker.slow import SlowCalls, TimedModel
from gymstream.worker.stall import StallWatch
from gymstream.worker.watch import WorkerWatch

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
    """Intake, slots, commits and rebalances of one agent's worker; ``runner`` does each task."""

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
        self.tasks_by_tp: dict[TopicPartition, set[asyncio.Task[None]]] = defaultdict(set)
        self.all_tasks: set[asyncio.Task[None]] = set()
        self.producer: Any = None
        self.consumer: Any = None
        self.commit_lock = asyncio.Lock()
        self.commit_failing = False  # logged once per streak of refused commits
        self.fenced = False  # frozen past the session timeout: said once, by ``_stalled``
        self.stall = StallWatch(self.settings.session_timeout_ms / 1000, self._stalled)
        self.runner.freezes.check = self.stall.tick  # worker/freeze.py
        # bumped when a partition is revoked: work started before belongs to the old owner
        self.generation: Counter[TopicPartition] = Counter()
        self.slot_freed = asyncio.Event()
        # rollouts between taking their task and having their output ready; ``all_tasks`` also
        # holds those still publishing, which need no slot (the model is not waiting on them)
        self.running = 0
        self.watch = (
            None
            if metrics is None
            else WorkerWatch(
                metrics,
                agent,
                self.topic,
                outage=runner.outage,
                in_flight=lambda: len(self.all_tasks),
                consumer=lambda: self.consumer,
                tracker=self.tracker,
            )
        )

    # --- the main loop -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> WorkerStats:
        self.producer = build_producer(self.kafka)
        try:
            # inside the try: a start that fails (no broker) must still close the client
            await self.producer.start()
            self.consumer = build_consumer(
                self.kafka,
                group_id=self.layout.worker_group(self.agent),
                max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
                session_timeout_ms=self.settings.session_timeout_ms,
                heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            )
            self.consumer.subscribe([self.topic], listener=_Rebalance(self))
            try:
                await self.consumer.start()
            except UnknownTopicOrPartitionError as exc:
                await self.consumer.stop()
                raise ConfigError(
                    f"topic {self.topic} does not exist: create it with `gymstream topics apply "
                    f"--agent {self.agent}` (same --topic-prefix), then start the worker"
                ) from exc
            except BaseException:
                await self.consumer.stop()
                raise
            await self.live_versions.start()
            broker_watch = watch_consumer(
                self.consumer,
                who=f"worker {self.agent}",
                bootstrap=self.kafka.bootstrap,
                interval_s=self.kafka.watch_interval_s,
            )
            self.stall.start()
            try:
                await self._loop(stop)
            finally:
                await self.stall.stop()
                await broker_watch.stop()
                await self._shutdown()
                await self.live_versions.stop()
        finally:
            await self.producer.stop()
        return self.stats

    async def _loop(self, stop: asyncio.Event) -> None:
        """Take work until ``stop``; the intake is cancelled then (wherever it waits)."""
        intake = asyncio.ensure_future(self._intake())
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({intake, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if intake.done():
                intake.result()  # the intake failed: raise its error
        finally:
            stop_wait.cancel()
            intake.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await intake

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
                if self.watch is not None:
                    await self.watch.measure_lag()

    def _start(self, tp: TopicPartition, message: Any) -> None:
        self.tracker.start(tp, message.offset)
        self.stats.taken += 1
        self.running += 1
        if self.watch is not None:
            self.watch.record.started.inc()
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
        async with self.commit_lock:
            positions = self.tracker.committable()
            if only is not None:
                positions = {tp: pos for tp, pos in positions.items() if tp in only}
            if not positions:
                return
            began = time.perf_counter()
            try:
                await self.consumer.commit(positions)
            except KafkaError as exc:
                # the group moved on (rebalance): the new owner redoes the uncommitted tail,
                # the sink drops the repeats. Said once until a commit succeeds again: a fenced
                # worker retried every 200 ms, 20 warnings in 5 s blaming max_poll_interval_ms
                # after a freeze, the commit may run before the stall watch's next tick: ask it
                # first, so the line says why (the freeze), not only that commits are refused
                self.stall.tick()
                if not self.commit_failing:
                    self.commit_failing = True
                    if self.fenced:
                        return  # ``_stalled`` said it, with its cause
                    log.warning(
                        "offset commit refused (%s): this worker no longer owns those "
                        "partitions (the group rebalanced: it was stopped, stalled or cut off); "
                        "their uncommitted work is redone by the new owner and the sink drops "
                        "the repeats",
                        type(exc).__name__,
                    )
                return
            if self.commit_failing and not self.fenced:
                log.warning("offset commits succeed again")
            if self.watch is not None:
                self.watch.record.commit.observe(time.perf_counter() - began)
            self.commit_failing = self.fenced = False
            self.tracker.mark_committed(positions)
            self.stats.commits += 1

    def _stalled(self, seconds: float) -> None:
        """The process was frozen past its session timeout: its partitions have moved."""
        self.fenced = True
        self.runner.freezes.record(seconds)
        log.warning(
            "this worker was stopped for %.1f s, past its session timeout (%.0f s): the group "
            "gave its partitions to other workers, so it no longer owns those partitions; the "
            "rollouts it had in flight are redone there and the sink drops the repeats "
            "(nothing is doubled); it rejoins the group now",
            seconds,
            self.settings.session_timeout_ms / 1000,
        )

    async def _shutdown(self) -> None:
        """Stop taking work, settle in-flight rollouts within the grace period, commit, leave."""
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
        await self.consumer.stop()

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
        if self.watch is not None:
            self.watch.record.finished(failure_class, outgoing.timings, outgoing.usage)
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
    agent_config: AgentConfig,
    env: AnyEnvironment | RemoteAgent,
    model: ModelClient,
    *,
    model_name: str,
    model_base_url: str = "",
    stop: asyncio.Event,
    settings: WorkerSettings,
    retry: RetrySettings,
    worker_id: str | None = None,
    on_outcome: Callable[[str, float | None, str | None], None] | None = None,
    metrics: Metrics | None = None,
    stats: WorkerStats | None = None,
) -> WorkerStats:
    """Serve one agent until ``stop`` is set; returns what was done.

    ``on_outcome(agent, reward or None, failure class or None)`` is called after each rollout's
    output is acknowledged by Kafka (used by progress bars). ``metrics``: record into it and
    register the worker's gauges and readiness check (``worker.watch``); None records nothing.
    ``stats``: the (new) stats object to fill, which the caller may read while the worker runs
    (live progress). ``model_base_url`` (the resolved base URL, comma-joined when spread)
    and ``model_name`` go on every result: which model produced it.
    """
    url = str(getattr(model, "url", "(the configured URL)"))
    step = OutcomeStep(
        agent=agent,
        worker_id=worker_id or new_worker_id(),
        results_topic=layout.results,
        failures_topic=layout.failures,
        max_message_bytes=settings.max_message_bytes,
        environment_server=agent_config.environment_stamp(),
        model_base_url=model_base_url or url,
        model_name=model_name,
    )
    live_versions = LiveVersions(kafka, layout)
    slow = SlowCalls(settings.slow_model_call_s, settings.slow_model_calls, url=url)
    runner = TaskRunner(
        step,
        env,
        TimedModel(model, slow),
        model_name,
        max_steps=agent_config.max_steps,
        skip_verification_reward=(
            agent_config.skip_verification_reward if agent_config.skip_verification else None
        ),
        deadline_s=retry.rollout_deadline_s,
        default_policy_version=settings.policy_version,
        live_version=live_versions.get,
        failure_log=FailureLog(url),
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
