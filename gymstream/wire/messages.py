"""The messages of the data path: task in, result or typed failure out (msgspec structs).

Rules: the user's row travels whole as a dict (unknown keys survive); new fields always get a
default so older messages still decode; an existing field never changes type.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["FailureMessage", "ResultMessage", "TaskMessage"]


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
