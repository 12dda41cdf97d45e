"""One task message, from its bytes to its acknowledged output: decode, roll out, publish.

``TaskRunner.outcome`` runs the agent loop under the per-rollout deadline and turns whatever
happened into the message to publish (through the pure ``OutcomeStep``); it never raises for a
rollout's failure. During a model outage (``outage.ModelOutage``) it retries the rollout after a
capped backoff instead, until the model answers or the outage budget is spent. ``publish``
sends that message and awaits Kafka's ack, retrying a broker outage for as long as it lasts
(the caller's offset stays open meanwhile). The Kafka intake,
the slots and the commits are the loop's (``worker.loop``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from gymstream.errors import GymstreamError, RolloutDeadlineError
from gymstream.nemo_gym.outputs.result import RolloutResult
from gymstream.nemo_gym.servers.agent import RemoteAgent
from gymstream.rollout.environment import AnyEnvironment
from gymstream.rollout.loop import run_rollout
from gymstream.rollout.model.client import ModelClient
from gymstream.wire.messages import FailureClass, TaskMessage
from gymstream.worker.failure_log import FailureLog
from gymstream.worker.freeze import Freezes
from gymstream.worker.outage import ModelOutage, is_outage
from gymstream.worker.outcome import OutcomeStep, Outgoing, Where, pick_policy_version

__all__ = ["TaskRunner"]

log = logging.getLogger("gymstream.worker.runner")


@dataclass
class PublishStreak:
    """Whether publishes are failing now: said once when they start and once when they stop."""

    failing: bool = False


@dataclass(frozen=True)
class TaskRunner:
    """What a worker does with one task; ``live_version(run_id)`` is the trainer's version."""

    step: OutcomeStep
    env: AnyEnvironment | RemoteAgent
    model: ModelClient
    model_name: str
    max_steps: int
    deadline_s: float
    default_policy_version: int | None
    live_version: Callable[[str], int | None]
    failure_log: FailureLog
    outage: ModelOutage = field(default_factory=lambda: ModelOutage(budget_s=600.0))
    publishing: PublishStreak = field(default_factory=PublishStreak)
    skip_verification_reward: float | None = None  # a reward without verifying (NeMo Gym's)
    freezes: Freezes = field(default_factory=Freezes)  # a deadline across a freeze is no failure

    async def outcome(self, value: bytes, where: Where) -> Outgoing:
        """The message to publish for the task message ``value`` read at ``where``."""
        task = self.step.decode(value, where, finished_ms=_now_ms())
        if isinstance(task, Outgoing):
            return task
        started = time.monotonic()
        version = pick_policy_version(
            self.live_version(task.run_id), task, self.default_policy_version
        )
        retry = 0
        while True:
            attempt_started = self.outage.now()
            awake_from = self.freezes.now()
            try:
                result = await self.rollout(task)
            except Exception as exc:  # boundary: every error becomes a typed failure
                if isinstance(exc, RolloutDeadlineError) and self.freezes.since(awake_from):
                    log.info("rollout %s: deadline passed while frozen: run again", task.rollout_id)
                    continue  # worker/freeze.py: a stale failure must never be published
                if not is_outage(exc):
                    self.outage.answered()  # whatever went wrong, the endpoint was there
                elif self.outage.should_retry(exc, attempt_started, first=retry == 0):
                    # an outage: this rollout waits it out (its retries are the probes)
                    await asyncio.sleep(self.outage.backoff(retry))
                    retry += 1
                    continue
                if not isinstance(exc, GymstreamError):  # a bug in an environment or ours
                    log.exception("rollout %s raised", task.rollout_id)
                return self.step.failed(task, exc, where=where, finished_ms=_now_ms())
            self.outage.answered()
            break
        return self.step.succeeded(
            task,
            result,
            policy_version=version,
            total_s=time.monotonic() - started,
            finished_ms=_now_ms(),
            where=where,
        )

    async def rollout(self, task: TaskMessage) -> RolloutResult:
        """The agent loop under the per-rollout deadline; RolloutDeadlineError when it fires.

        A ``TimeoutError`` that escapes the agent loop is taken for the deadline too, as it
        always was (the model client turns its own timeouts into ``ModelCallError``).
        """
        try:
            async with asyncio.timeout(self.deadline_s):
                if isinstance(self.env, RemoteAgent):
                    return await self.env.run(task.row)
                return await run_rollout(
                    task.row,
                    self.env,
                    self.model,
                    model_name=self.model_name,
                    max_steps=self.max_steps,
                    skip_verification_reward=self.skip_verification_reward,
                )
        except TimeoutError as exc:
            raise RolloutDeadlineError(
                f"rollout ran past its deadline of {self.deadline_s:.0f} s"
            ) from exc

    def report(self, out: Outgoing) -> None:
        """Log a failure: each poison message (rare), rollouts through the throttled log."""
        failure = out.failure
        if failure is None:
            return
        if failure.failure_class == FailureClass.POISON_MESSAGE:
            log.warning(
                "poison message at %s/%s/%s: %s",
                failure.topic,
                failure.partition,
                failure.offset,
                failure.message,
            )
        else:
            self.failure_log.record(failure.failure_class, failure.rollout_id, failure.message)

    async def publish(self, producer: Any, out: Outgoing) -> None:
        """Send and await the ack; on a broker outage keep trying (the offset stays open).

        A message Kafka refuses as too large is replaced by its ``result_too_large`` failure.
        """
        delay_s = 0.2
        while True:
            try:
                await (await producer.send(out.topic, out.value, key=out.key))
                if self.publishing.failing:
                    self.publishing.failing = False
                    log.warning("publishing works again")
                return
            except MessageSizeTooLargeError as exc:
                rollout = out.task.rollout_id if out.task is not None else out.key.decode()
                log.error("the outcome of rollout %s is too large for Kafka: %s", rollout, exc)
                out = self.step.too_large(out, exc, finished_ms=_now_ms())
            except KafkaError as exc:
                # once per streak, not per retry and message (the broker watch says the outage)
                if not self.publishing.failing:
                    self.publishing.failing = True
                    log.warning("publishing failed (%s); retrying until Kafka takes it", exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)


def _now_ms() -> int:
    return int(time.time() * 1000)
