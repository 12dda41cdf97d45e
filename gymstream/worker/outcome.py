"""The worker's pure outcome step: a task message and how its rollout ended -> what to publish.

No Kafka, no clock, no logging: the caller passes the times and logs what the returned
``Outgoing`` says. Every way a task can end maps to exactly one message:

- the message is too big or not a task                  -> ``poison_message`` failure
- the task names another agent than this worker serves   -> ``unknown_agent`` failure
- the rollout raised                                     -> a failure classed by ``classify``
- the rollout finished                                   -> a ``ResultMessage`` (the output row)
- the result is too large for Kafka                      -> ``result_too_large`` failure
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from gymstream.errors import GymstreamError
from gymstream.nemo_gym.outputs.output_row import EnvironmentServer, output_row
from gymstream.nemo_gym.outputs.result import RolloutResult
from gymstream.wire.codec import DECODE_TASK, ENCODER
from gymstream.wire.keys import group_key, location, poison_id
from gymstream.wire.messages import FailureClass, FailureMessage, ResultMessage, TaskMessage

__all__ = [
    "Classified",
    "OutcomeStep",
    "Outgoing",
    "Where",
    "classify",
    "pick_policy_version",
    "usage_tokens",
]


class Where(NamedTuple):
    """Where a task message was read; written into its failure record."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return location(self.topic, self.partition, self.offset)


class _Identity(msgspec.Struct, frozen=True):
    """What the sink needs to count a task, read from a message that is not a valid task (too
    big, or a bad row): the envelope's identity fields, the rest skipped unread."""

    run_id: str
    rollout_id: str
    agent: str
    task_index: int
    rollout_index: int
    attempt: int = 0
    created_ms: int = 0


_DECODE_IDENTITY = msgspec.json.Decoder(_Identity)


@dataclass(frozen=True)
class Outgoing:
    """One encoded message to publish; ``failure`` is the record when it is a failure.

    ``task`` and ``where`` say which task it answers, so that a result Kafka refuses as too large
    becomes a failure the sink can count (run id and identity kept)."""

    topic: str
    key: bytes
    value: bytes
    failure: FailureMessage | None = None
    reward: float = 0.0
    task: TaskMessage | None = None
    where: Where | None = None
    timings: dict[str, float] | None = None
    usage: dict[str, int] | None = None
    """A result's timings (model_s, tools_s, verify_s, total_s) and the model's summed token
    counts (``usage_tokens``), for the metrics (``observe``); None on failures."""

    @property
    def failure_class(self) -> str | None:
        return None if self.failure is None else self.failure.failure_class


class Classified(NamedTuple):
    """What a failure record says about the exception that ended a rollout."""

    failure_class: FailureClass
    failure_type: str
    terminal: bool
    http_status: int | None = None
    attempts: int = 1


_TOKEN_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def usage_tokens(verify: Mapping[str, Any]) -> dict[str, int]:
    """The token counts of a verify result's ``response.usage`` (Responses names), for the
    summaries; empty when the model reported none."""
    response = verify.get("response")
    usage = response.get("usage") if isinstance(response, Mapping) else None
    if not isinstance(usage, Mapping):
        return {}
    return {
        key: value for key in _TOKEN_KEYS if type(value := usage.get(key)) is int and value >= 0
    }


def classify(exc: BaseException) -> Classified:
    """The failure class of an exception a rollout raised.

    A ``GymstreamError`` carries its class and whether a retry can help (``terminal`` is its
    negation), model errors also the HTTP status and the attempts made; anything else is a bug
    in an environment or in gymstream: ``internal_error``, terminal.
    """
    if isinstance(exc, GymstreamError):
        return Classified(
            exc.failure_class,
            type(exc).__name__,
            terminal=not exc.retriable,
            http_status=getattr(exc, "http_status", None),
            attempts=getattr(exc, "attempts", 1),
        )
    return Classified(FailureClass.INTERNAL_ERROR, type(exc).__name__, terminal=True)


def pick_policy_version(live: int | None, task: TaskMessage, default: int | None) -> int | None:
    """The version a rollout runs under: the trainer's live one, else the task's, else ours."""
    if live is not None:
        return live
    return task.policy_version if task.policy_version is not None else default


@dataclass(frozen=True)
class OutcomeStep:
    """The outcome step of one worker: who it is and where its messages go."""

    agent: str
    worker_id: str
    results_topic: str
    failures_topic: str
    max_message_bytes: int | None  # None: the topic's max.message.bytes is the one limit
    environment_server: EnvironmentServer | None = None  # stamped on every output row
    model_base_url: str = ""  # which model this worker's results come from (the envelope says)
    model_name: str = ""

    def decode(self, value: bytes, where: Where, *, finished_ms: int) -> TaskMessage | Outgoing:
        """The task to run, or the failure to publish instead (poison, or another agent's)."""
        if self.max_message_bytes is not None and len(value) > self.max_message_bytes:
            return self._poison(
                value,
                where,
                "oversize",
                f"task message of {len(value)} bytes exceeds the worker's "
                f"limit of {self.max_message_bytes}",
                finished_ms,
            )
        try:
            task = DECODE_TASK.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            return self._poison(
                value, where, "undecodable", f"not a task message: {exc}", finished_ms
            )
        if task.agent != self.agent:
            return self._failure(
                task,
                Classified(FailureClass.UNKNOWN_AGENT, "UnknownAgent", terminal=True),
                f"task for agent '{task.agent}' arrived on {where.topic}, served by '{self.agent}'",
                where,
                finished_ms,
            )
        return task

    def succeeded(
        self,
        task: TaskMessage,
        result: RolloutResult,
        *,
        policy_version: int | None,
        total_s: float,
        finished_ms: int,
        where: Where | None = None,
    ) -> Outgoing:
        """The result message of a finished rollout; ``total_s`` joins the rollout's timings."""
        verify = result.verify_result
        reward = float(verify.get("reward", 0.0))
        timings = {**result.timings, "total_s": total_s}
        tokens = usage_tokens(verify)
        envelope = ResultMessage(
            run_id=task.run_id,
            rollout_id=task.rollout_id,
            agent=task.agent,
            task_index=task.task_index,
            rollout_index=task.rollout_index,
            output=msgspec.Raw(ENCODER.encode(output_row(verify, task, self.environment_server))),
            reward=reward,
            attempt=task.attempt,
            created_ms=task.created_ms,
            finished_ms=finished_ms,
            worker_id=self.worker_id,
            policy_version=policy_version,
            timings=timings,
            tokens=tokens,
            model_base_url=self.model_base_url,
            model_name=self.model_name,
        )
        key = group_key(task.run_id, task.agent, task.task_index)
        return Outgoing(
            self.results_topic,
            key,
            ENCODER.encode(envelope),
            reward=reward,
            task=task,
            where=where,
            timings=timings,
            usage=tokens or None,
        )

    def failed(
        self, task: TaskMessage, exc: BaseException, *, where: Where, finished_ms: int
    ) -> Outgoing:
        """The failure message of a rollout that raised ``exc`` (classed by ``classify``)."""
        return self._failure(task, classify(exc), str(exc), where, finished_ms)

    def too_large(self, out: Outgoing, exc: BaseException, *, finished_ms: int) -> Outgoing:
        """What replaces a message Kafka refused as too large (terminal: it would be again): a
        ``result_too_large`` failure of the same task, its identity kept so the sink counts it;
        a failure refused in turn is sent again without its row (the row is what is large)."""
        failure = out.failure
        if failure is not None:
            if failure.row is None:
                raise exc  # nothing left to shrink: a bug, not a row (identity is a few bytes)
            smaller = msgspec.structs.replace(failure, row=None)
            return Outgoing(out.topic, out.key, ENCODER.encode(smaller), smaller)
        if out.task is None:
            raise exc  # a result always carries its task (``succeeded``)
        where = out.where or Where(self.results_topic, -1, -1)
        classified = Classified(FailureClass.RESULT_TOO_LARGE, type(exc).__name__, terminal=True)
        message = f"result message of {len(out.value)} bytes refused by Kafka: {exc}"
        return self._failure(out.task, classified, message, where, finished_ms)

    def _failure(
        self,
        task: TaskMessage | _Identity,
        classified: Classified,
        message: str,
        where: Where,
        finished_ms: int,
        *,
        key: bytes | None = None,
    ) -> Outgoing:
        """The failure record of ``task`` (a whole task, or the identity read from a message
        that is not one: then without a row); keyed by its group unless ``key``."""
        record = FailureMessage(
            run_id=task.run_id,
            rollout_id=task.rollout_id,
            agent=task.agent,
            task_index=task.task_index,
            rollout_index=task.rollout_index,
            failure_class=classified.failure_class,
            failure_type=classified.failure_type,
            message=message,
            terminal=classified.terminal,
            attempts=classified.attempts,
            attempt=task.attempt,
            http_status=classified.http_status,
            row=task.row if isinstance(task, TaskMessage) else None,
            created_ms=task.created_ms,
            finished_ms=finished_ms,
            worker_id=self.worker_id,
            topic=where.topic,
            partition=where.partition,
            offset=where.offset,
        )
        key = key or group_key(task.run_id, task.agent, task.task_index)
        return Outgoing(self.failures_topic, key, ENCODER.encode(record), record)

    def _poison(
        self, value: bytes, where: Where, kind: str, message: str, finished_ms: int
    ) -> Outgoing:
        """A ``poison_message`` failure; with the task's identity when its envelope still reads
        (an oversize task, a bad row), so the sink counts it. Without one (not a task message
        at all), no producer of gymstream counted it in a manifest: no run waits for it."""
        classified = Classified(FailureClass.POISON_MESSAGE, kind, terminal=True)
        try:
            found = _DECODE_IDENTITY.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            unknown = _Identity("", poison_id(*where), self.agent, -1, -1)
            return self._failure(
                unknown, classified, message, where, finished_ms, key=str(where).encode()
            )
        return self._failure(found, classified, message, where, finished_ms)
