"""The messages of the data path: task in, result or typed failure out (msgspec structs).

Rules: the user's row travels whole as a dict (unknown keys survive); new fields always get a
default so older messages still decode; an existing field never changes type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

__all__ = ["FailureClass", "FailureMessage", "ResultMessage", "TaskMessage"]


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
    tokens: dict[str, int] = msgspec.field(default_factory=dict)
    """The rollout's token usage, summed over its model calls (``input_tokens``,
    ``output_tokens``, ``total_tokens``: the Responses usage); empty when the model sent none."""
    model_base_url: str = ""
    """Which model produced it: the worker's resolved base URL (comma-separated when it spreads
    over several servers) and model name, with ``policy_version``; "" from older workers."""
    model_name: str = ""


class FailureClass(StrEnum):
    """Every value ``FailureMessage.failure_class`` takes (``_ng_failure_class`` in the files).

    The wire field stays a ``str`` (a member is one); readers compare with members, and a value
    they do not know (from a newer writer) is kept as it is. docs/guarantees.md has one row per
    member saying what it means and whether ``retry-failures`` republishes it (a test holds them
    together).
    """

    # the model endpoint, retriable (ModelCallError)
    MODEL_TIMEOUT = "model_timeout"
    MODEL_CONNECTION_ERROR = "model_connection_error"
    MODEL_HTTP_429 = "model_http_429"
    MODEL_HTTP_5XX = "model_http_5xx"
    MODEL_UNAVAILABLE = "model_unavailable"
    # the model endpoint, not retriable (ModelResponseError)
    MODEL_HTTP_3XX = "model_http_3xx"
    MODEL_HTTP_4XX = "model_http_4xx"
    MODEL_MALFORMED_RESPONSE = "model_malformed_response"
    MODEL_REQUEST_UNSUPPORTED = "model_request_unsupported"
    MODEL_BAD_RESPONSE = "model_bad_response"
    # the rollout
    ROLLOUT_DEADLINE = "rollout_deadline"
    TOOL_ERROR = "tool_error"
    VERIFIER_ERROR = "verifier_error"
    BAD_INPUT = "bad_input"
    CONFIG_ERROR = "config_error"
    KAFKA_SETUP_ERROR = "kafka_setup_error"
    INTERNAL_ERROR = "internal_error"
    # the message, before or after the rollout
    POISON_MESSAGE = "poison_message"
    UNKNOWN_AGENT = "unknown_agent"
    RESULT_TOO_LARGE = "result_too_large"
    # token ids asked for (return_token_id_information) but missing or malformed in an answer
    MODEL_TOKEN_IDS_MISSING = "model_token_ids_missing"  # noqa: S105 (a key name, not a password)
    # a NeMo Gym server over HTTP (ServerCallError retriable, ServerResponseError not)
    RESOURCES_SERVER_UNAVAILABLE = "resources_server_unavailable"
    RESOURCES_SERVER_ERROR = "resources_server_error"
    REMOTE_AGENT_UNAVAILABLE = "remote_agent_unavailable"
    REMOTE_AGENT_ERROR = "remote_agent_error"


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
    failure_class: str  # a FailureClass value; typed str so that unknown values still decode
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
