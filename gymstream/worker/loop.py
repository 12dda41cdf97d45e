"""Worker: consume tasks -> agent loop -> verify -> publish result or typed failure -> commit.

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

import msgspec
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from gymstream.config import AgentConfig
from gymstream.errors import GymstreamError
from gymstream.kafka.clients import build_consumer, build_producer
from gymstream.kafka.offsets import OffsetTracker
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo.output_row import output_row
from gymstream.rollout.environment import Environment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import ModelClient
from gymstream.runs.policy import LiveVersions
from gymstream.settings import KafkaSettings, RetrySettings, WorkerSettings
from gymstream.wire.codec import DECODE_TASK, ENCODER
from gymstream.wire.keys import group_key
from gymstream.wire.messages import FailureMessage, ResultMessage, TaskMessage

__all__ = ["WorkerStats", "new_worker_id", "run_worker"]

log = logging.getLogger("gymstream.worker.loop")

MAX_POLL_INTERVAL_MS = 600_000
"""The group drops a consumer that has not polled for this long."""
IDLE_POLL_S = MAX_POLL_INTERVAL_MS / 4000
"""With every slot held this long, the worker makes an empty poll to stay in its group."""

FAILURE_LOG_INTERVAL_S = 10.0
"""At most one warning per failure class per this many seconds; each says how many it stands for."""

_FAILURE_HEADLINES = {
    "model_connection_error": "model endpoint {url} is unreachable: check that the model server "
    "is up and that GYMSTREAM_MODEL_BASE_URL points at it",
    "model_timeout": "model endpoint {url} does not answer within GYMSTREAM_MODEL_TIMEOUT_S: the "
    "server may be overloaded or stuck",
    "model_http_5xx": "model endpoint {url} answers with server errors (HTTP 5xx)",
    "model_http_429": "model endpoint {url} keeps rate-limiting (HTTP 429): lower the concurrency",
    "model_http_4xx": "model endpoint {url} rejects the requests (HTTP 4xx): check the model "
    "name, the API key and the request parameters",
}


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

    @property
    def done(self) -> int:
        return self.succeeded + sum(self.failures.values())


class _FailureLog:
    """Rate-limited warnings about failed rollouts, one headline per failure class.

    A model that is down fails every rollout: one warning each would bury the cause under
    thousands of lines. Each rollout's failure is logged at INFO (``--verbose``); per class, the
    first one and then at most one per ``interval_s`` is a WARNING that names the cause in words
    and counts the rollouts it stands for. ``flush`` reports what is still uncounted.
    """

    def __init__(self, model_url: str, interval_s: float = FAILURE_LOG_INTERVAL_S) -> None:
        self.model_url = model_url
        self.interval_s = interval_s
        self.unreported: Counter[str] = Counter()
        self.latest: dict[str, str] = {}
        self.warned_at: dict[str, float] = {}

    def record(self, failure_class: str, rollout_id: str, message: str) -> None:
        log.info("rollout %s failed: %s: %s", rollout_id, failure_class, message)
        self.unreported[failure_class] += 1
        self.latest[failure_class] = f"rollout {rollout_id}: {message}"
        last = self.warned_at.get(failure_class)
        if last is None or time.monotonic() - last >= self.interval_s:
            self._warn(failure_class)

    def flush(self, *, due_only: bool = False) -> None:
        now = time.monotonic()
        for failure_class in [c for c, n in self.unreported.items() if n]:
            if not due_only or now - self.warned_at.get(failure_class, 0.0) >= self.interval_s:
                self._warn(failure_class)

    def _warn(self, failure_class: str) -> None:
        count = self.unreported.pop(failure_class)
        headline = _FAILURE_HEADLINES.get(failure_class, "rollouts are failing")
        last = self.warned_at.get(failure_class)
        window = "" if last is None else f" in the last {time.monotonic() - last:.0f} s"
        self.warned_at[failure_class] = time.monotonic()
        log.warning(
            "%s; %d rollout(s) failed with %s%s (each is in the failures topic); latest: %s",
            headline.format(url=self.model_url),
            count,
            failure_class,
            window,
            self.latest[failure_class],
        )


@dataclass(frozen=True)
class _Outgoing:
    topic: str
    key: bytes
    value: bytes
    failure_class: str | None
    reward: float = 0.0


class _Worker:
    def __init__(
        self,
        kafka: KafkaSettings,
        layout: TopicLayout,
        agent: str,
        agent_config: AgentConfig,
        env: Environment,
        model: ModelClient,
        model_name: str,
        settings: WorkerSettings,
        retry: RetrySettings,
        worker_id: str,
        on_outcome: Callable[[str, float | None, str | None], None] | None,
    ) -> None:
        self.kafka = kafka
        self.layout = layout
        self.agent = agent
        self.agent_config = agent_config
        self.env = env
        self.model = model
        self.model_name = model_name
        self.settings = settings
        self.retry = retry
        self.worker_id = worker_id
        self.on_outcome = on_outcome
        self.topic = layout.tasks(agent)
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.stats = WorkerStats()
        self.tasks_by_tp: dict[TopicPartition, set[asyncio.Task[None]]] = defaultdict(set)
        self.all_tasks: set[asyncio.Task[None]] = set()
        self.producer: Any = None
        self.consumer: Any = None
        self.commit_lock = asyncio.Lock()
        self.live_versions = LiveVersions(kafka, layout)
        # bumped when a partition is revoked: work started before belongs to the old owner
        self.generation: Counter[TopicPartition] = Counter()
        self.slot_freed = asyncio.Event()
        # rollouts between taking their task and having their output ready; ``all_tasks`` also
        # holds those still publishing, which need no slot (the model is not waiting on them)
        self.running = 0
        self.failure_log = _FailureLog(str(getattr(model, "url", "(the configured URL)")))

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
            except BaseException:
                await self.consumer.stop()
                raise
            await self.live_versions.start()
            try:
                await self._loop(stop)
            finally:
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
                self.failure_log.flush(due_only=True)

    def _start(self, tp: TopicPartition, message: Any) -> None:
        self.tracker.start(tp, message.offset)
        self.stats.taken += 1
        self.running += 1
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
            try:
                await self.consumer.commit(positions)
            except KafkaError as exc:
                # the group moved on (rebalance): the new owner redoes the uncommitted tail,
                # the sink drops the repeats
                log.warning("offset commit failed (%s); uncommitted work will be redone", exc)
                return
            self.tracker.mark_committed(positions)
            self.stats.commits += 1

    async def _shutdown(self) -> None:
        """Stop taking work, settle in-flight rollouts within the grace period, commit, leave."""
        with contextlib.suppress(KafkaError):
            self.consumer.pause(*self.consumer.assignment())
        if self.all_tasks:
            log.info("settling %d rollouts in flight", len(self.all_tasks))
            await asyncio.wait(set(self.all_tasks), timeout=self.settings.shutdown_grace_s)
        await self._commit()
        for task in list(self.all_tasks):
            task.cancel()
        if self.all_tasks:
            await asyncio.wait(set(self.all_tasks))
        self.failure_log.flush()
        await self.consumer.stop()

    # --- one message ---------------------------------------------------------------------
    async def _process(self, tp: TopicPartition, message: Any, generation: int) -> None:
        try:
            outgoing = await self._outcome(tp, message)
        finally:
            self.running -= 1
            self.slot_freed.set()
        await self._publish(outgoing)
        if generation != self.generation[tp]:
            return  # the partition was revoked meanwhile: its new owner redoes this offset
        self.tracker.done(tp, message.offset)
        if outgoing.failure_class is None:
            self.stats.succeeded += 1
            self.stats.reward_sum += outgoing.reward
        else:
            self.stats.failures[outgoing.failure_class] += 1
        if self.on_outcome is not None:
            reward = outgoing.reward if outgoing.failure_class is None else None
            self.on_outcome(self.agent, reward, outgoing.failure_class)

    async def _publish(self, out: _Outgoing) -> None:
        """Send and await the ack; on a broker outage keep trying (the offset stays open)."""
        delay_s = 0.2
        while True:
            try:
                await (await self.producer.send(out.topic, out.value, key=out.key))
                return
            except MessageSizeTooLargeError as exc:
                log.error("result of %s too large for Kafka: %s", out.key.decode(), exc)
                out = _Outgoing(
                    self.layout.failures,
                    out.key,
                    ENCODER.encode(
                        FailureMessage(
                            run_id="",
                            rollout_id=out.key.decode(),
                            agent=self.agent,
                            task_index=-1,
                            rollout_index=-1,
                            failure_class="result_too_large",
                            failure_type=type(exc).__name__,
                            message=str(exc),
                            terminal=True,
                        )
                    ),
                    "result_too_large",
                )
            except KafkaError as exc:
                log.warning("publishing failed (%s); retrying in %.1f s", exc, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    async def _outcome(self, tp: TopicPartition, message: Any) -> _Outgoing:
        where = {"topic": tp.topic, "partition": tp.partition, "offset": message.offset}
        value: bytes = message.value or b""
        if len(value) > self.settings.max_message_bytes:
            return self._poison(
                where,
                "oversize",
                f"task message of {len(value)} bytes exceeds the worker's "
                f"limit of {self.settings.max_message_bytes}",
            )
        try:
            task = DECODE_TASK.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._poison(where, "undecodable", f"not a task message: {exc}")
        if task.agent != self.agent:
            return self._failure(
                task,
                "unknown_agent",
                "UnknownAgent",
                f"task for agent '{task.agent}' arrived on {tp.topic}, served by '{self.agent}'",
                terminal=True,
                where=where,
            )
        return await self._run_task(task, where)

    async def _run_task(self, task: TaskMessage, where: dict[str, Any]) -> _Outgoing:
        started = time.monotonic()
        # the version live when the rollout starts: trainer's, else the task's, else ours
        version = self.live_versions.get(task.run_id)
        if version is None:
            version = (
                task.policy_version
                if task.policy_version is not None
                else self.settings.policy_version
            )
        try:
            async with asyncio.timeout(self.retry.rollout_deadline_s):
                result = await run_rollout(
                    task.row,
                    self.env,
                    self.model,
                    model_name=self.model_name,
                    max_steps=self.agent_config.max_steps,
                )
        except TimeoutError:
            return self._failure(
                task,
                "rollout_deadline",
                "TimeoutError",
                f"rollout ran past its deadline of {self.retry.rollout_deadline_s:.0f} s",
                terminal=False,
                where=where,
            )
        except GymstreamError as exc:
            return self._failure(
                task,
                exc.failure_class,
                type(exc).__name__,
                str(exc),
                terminal=not exc.retriable,
                where=where,
                http_status=getattr(exc, "http_status", None),
                attempts=getattr(exc, "attempts", 1),
            )
        except Exception as exc:  # a bug in an environment or in gymstream: record, go on
            log.exception("rollout %s raised", task.rollout_id)
            return self._failure(
                task, "internal_error", type(exc).__name__, str(exc), terminal=True, where=where
            )
        verify = result.verify_result
        output = output_row(verify, task)
        reward = float(verify.get("reward", 0.0))
        timings = dict(result.timings)
        timings["total_s"] = time.monotonic() - started
        envelope = ResultMessage(
            run_id=task.run_id,
            rollout_id=task.rollout_id,
            agent=task.agent,
            task_index=task.task_index,
            rollout_index=task.rollout_index,
            output=msgspec.Raw(ENCODER.encode(output)),
            reward=reward,
            attempt=task.attempt,
            created_ms=task.created_ms,
            finished_ms=int(time.time() * 1000),
            worker_id=self.worker_id,
            policy_version=version,
            timings=timings,
        )
        key = group_key(task.run_id, task.agent, task.task_index)
        return _Outgoing(self.layout.results, key, ENCODER.encode(envelope), None, reward)

    def _failure(
        self,
        task: TaskMessage,
        failure_class: str,
        failure_type: str,
        message: str,
        *,
        terminal: bool,
        where: dict[str, Any],
        http_status: int | None = None,
        attempts: int = 1,
    ) -> _Outgoing:
        self.failure_log.record(failure_class, task.rollout_id, message)
        record = FailureMessage(
            run_id=task.run_id,
            rollout_id=task.rollout_id,
            agent=task.agent,
            task_index=task.task_index,
            rollout_index=task.rollout_index,
            failure_class=failure_class,
            failure_type=failure_type,
            message=message,
            terminal=terminal,
            attempts=attempts,
            attempt=task.attempt,
            http_status=http_status,
            row=task.row,
            created_ms=task.created_ms,
            finished_ms=int(time.time() * 1000),
            worker_id=self.worker_id,
            **where,
        )
        key = group_key(task.run_id, task.agent, task.task_index)
        return _Outgoing(self.layout.failures, key, ENCODER.encode(record), failure_class)

    def _poison(self, where: dict[str, Any], kind: str, message: str) -> _Outgoing:
        location = f"{where['topic']}/{where['partition']}/{where['offset']}"
        log.warning("poison message at %s: %s", location, message)
        record = FailureMessage(
            run_id="",
            rollout_id=f"poison:{location}",
            agent=self.agent,
            task_index=-1,
            rollout_index=-1,
            failure_class="poison_message",
            failure_type=kind,
            message=message,
            terminal=True,
            finished_ms=int(time.time() * 1000),
            worker_id=self.worker_id,
            **where,
        )
        return _Outgoing(
            self.layout.failures, location.encode(), ENCODER.encode(record), "poison_message"
        )


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
    env: Environment,
    model: ModelClient,
    *,
    model_name: str,
    stop: asyncio.Event,
    settings: WorkerSettings | None = None,
    retry: RetrySettings | None = None,
    worker_id: str | None = None,
    on_outcome: Callable[[str, float | None, str | None], None] | None = None,
) -> WorkerStats:
    """Serve one agent until ``stop`` is set; returns what was done.

    ``on_outcome(agent, reward or None, failure class or None)`` is called after each rollout's
    output is acknowledged by Kafka (used by progress bars).
    """
    worker = _Worker(
        kafka,
        layout,
        agent,
        agent_config,
        env,
        model,
        model_name,
        settings or WorkerSettings(concurrency=agent_config.concurrency),
        retry or RetrySettings(),
        worker_id or new_worker_id(),
        on_outcome,
    )
    return await worker.run(stop)
