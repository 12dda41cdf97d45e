"""Wire messages that cross Kafka (msgspec structs) and the shared encoder/decoders.

Rules: the user's row travels whole as a dict (unknown keys survive); new fields always get a
default so older messages still decode; an existing field never changes type.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "ALL_ROLLOUTS",
    "DECODE_FAILURE",
    "DECODE_MANIFEST",
    "DECODE_POLICY_VERSION",
    "DECODE_PROGRESS",
    "DECODE_RESULT",
    "DECODE_TASK",
    "ENCODER",
    "ClosedRanges",
    "FailureMessage",
    "PolicyVersion",
    "ResultMessage",
    "RunManifest",
    "StreamProgress",
    "TaskMessage",
    "rollout_id",
]


def rollout_id(run_id: str, agent: str, task_index: int, rollout_index: int) -> str:
    """The rollout's identity, unique in the run and stable across retries and restarts."""
    return f"{run_id}/{agent}/{task_index}/{rollout_index}"


class TaskMessage(msgspec.Struct, kw_only=True, frozen=True):
    """One rollout to run: published by the producer to ``gymstream.tasks.<agent>``."""

    run_id: str
    rollout_id: str
    agent: str
    task_index: int
    rollout_index: int
    row: dict[str, Any]
    attempt: int = 0
    created_ms: int = 0
    policy_version: int | None = None


class ResultMessage(msgspec.Struct, kw_only=True, frozen=True):
    """A scored rollout: published by a worker to ``gymstream.results``, keyed by task.

    ``output`` is the NeMo Gym output row, serialised once by the worker and never re-encoded.
    """

    run_id: str
    rollout_id: str
    agent: str
    task_index: int
    rollout_index: int
    output: msgspec.Raw
    reward: float
    attempt: int = 0
    created_ms: int = 0
    finished_ms: int = 0
    worker_id: str = ""
    policy_version: int | None = None
    timings: dict[str, float] = msgspec.field(default_factory=dict)


class FailureMessage(msgspec.Struct, kw_only=True, frozen=True):
    """A typed failure: published to ``gymstream.failures``; never turned into reward 0.

    ``terminal`` is false when a later attempt may succeed (``retry-failures`` republishes those);
    ``row`` is kept so that a retry needs nothing but this record.
    """

    run_id: str
    rollout_id: str
    agent: str
    task_index: int
    rollout_index: int
    failure_class: str
    failure_type: str
    message: str
    terminal: bool
    attempts: int = 1
    attempt: int = 0
    http_status: int | None = None
    row: dict[str, Any] | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    created_ms: int = 0
    finished_ms: int = 0
    worker_id: str = ""


class RunManifest(msgspec.Struct, kw_only=True, frozen=True):
    """A run's manifest on the compacted ``gymstream.runs`` topic, keyed by run id.

    A sink or stream knows the run is complete when ``state`` is ``produced`` and every expected
    rollout is accounted for.
    """

    run_id: str
    state: Literal["producing", "produced"]
    expected: dict[str, int] = msgspec.field(default_factory=dict)
    input_path: str = ""
    created_ms: int = 0
    rollout_ids_hash: str = ""


ALL_ROLLOUTS = -1  # a ClosedRanges / unit that stands for every rollout of a task (a group)


class ClosedRanges(msgspec.Struct, kw_only=True, frozen=True):
    """Wire form of one agent's (and, in rollout mode, one rollout index's) closed tasks."""

    agent: str
    rollout_index: int = ALL_ROLLOUTS
    tasks: list[int] = msgspec.field(default_factory=list)


class PolicyVersion(msgspec.Struct, kw_only=True, frozen=True):
    """The trainer's policy version for a run (runs topic, key ``control/<run id>``)."""

    run_id: str
    version: int
    updated_ms: int = 0


class StreamProgress(msgspec.Struct, kw_only=True, frozen=True):
    """A trainer stream's committed position and progress (key ``progress/<run>/<consumer>``).

    ``results`` / ``failures``: partition -> offset to read again from (the watermark: no live
    unit has a message below it). ``closed``: the units acknowledged or dropped, as task ranges
    per agent. ``closed_units``: how many (what a ``Pacer`` compares with what was produced).
    """

    run_id: str
    consumer: str
    unit: Literal["group", "rollout"]
    group_size: int
    results: dict[int, int] = msgspec.field(default_factory=dict)
    failures: dict[int, int] = msgspec.field(default_factory=dict)
    closed: list[ClosedRanges] = msgspec.field(default_factory=list)
    closed_units: int = 0
    acknowledged_units: int = 0
    policy_version: int | None = None
    updated_ms: int = 0


ENCODER = msgspec.json.Encoder()
DECODE_TASK = msgspec.json.Decoder(TaskMessage)
DECODE_RESULT = msgspec.json.Decoder(ResultMessage)
DECODE_FAILURE = msgspec.json.Decoder(FailureMessage)
DECODE_MANIFEST = msgspec.json.Decoder(RunManifest)
DECODE_POLICY_VERSION = msgspec.json.Decoder(PolicyVersion)
DECODE_PROGRESS = msgspec.json.Decoder(StreamProgress)
