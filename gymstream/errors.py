"""The one tree of gymstream's exceptions; each class says whether a retry can help."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from gymstream.wire.messages import FailureClass

__all__ = [
    "ConfigError",
    "EnvironmentNotFoundError",
    "GymstreamError",
    "KafkaSetupError",
    "ModelCallError",
    "ModelError",
    "ModelResponseError",
    "RolloutDeadlineError",
    "RowError",
    "ServerCallError",
    "ServerError",
    "ServerResponseError",
    "ToolError",
    "VerifierError",
]


class GymstreamError(Exception):
    """Base of every error gymstream raises on purpose.

    ``failure_class`` is the stable, machine-readable name written into failure records
    (``_ng_failure_class``); ``retriable`` says whether trying the same work again can help.
    """

    retriable: ClassVar[bool] = False
    failure_class: ClassVar[FailureClass] = FailureClass.INTERNAL_ERROR


class ConfigError(GymstreamError):
    """A configuration file or option is wrong; the message says which and how to fix it."""

    failure_class = FailureClass.CONFIG_ERROR


class KafkaSetupError(GymstreamError):
    """The local Kafka could not be fetched, started or reached."""

    failure_class = FailureClass.KAFKA_SETUP_ERROR


class EnvironmentNotFoundError(ConfigError):
    """No environment or agent of that name is known."""


class RowError(GymstreamError):
    """One input row is bad; the message names file, line, field and problem."""

    failure_class = FailureClass.BAD_INPUT

    def __init__(self, path: Path | str, line: int, field: str, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        super().__init__(f"{path}:{line}: {field}: {problem}")


class _CallFailure(GymstreamError):
    """A call to a remote service failed; carries the failure class, HTTP status, attempts."""

    def __init__(
        self,
        message: str,
        *,
        failure_class: FailureClass | None = None,
        http_status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        if failure_class is not None:
            self.failure_class = failure_class  # type: ignore[misc]  # refines the class default
        self.http_status = http_status
        self.attempts = attempts


class ModelError(_CallFailure):
    """A model call failed; carries the failure class, the HTTP status and the attempts made."""


class ModelCallError(ModelError):
    """The model endpoint failed in a way a retry may cure (timeout, 429, 5xx, connection)."""

    retriable = True
    failure_class = FailureClass.MODEL_UNAVAILABLE


class ModelResponseError(ModelError):
    """The model endpoint answered something no retry will fix (a 4xx, a malformed body)."""

    failure_class = FailureClass.MODEL_BAD_RESPONSE


class RolloutDeadlineError(GymstreamError):
    """The rollout ran past ``RetrySettings.rollout_deadline_s``; retriable as a whole rollout.

    Raised by the worker when the deadline around the agent loop fires (the cause is the
    ``TimeoutError`` of that deadline).
    """

    retriable = True
    failure_class = FailureClass.ROLLOUT_DEADLINE


class ToolError(GymstreamError):
    """A tool raised; the agent loop reports it to the model, so this only escapes on bugs."""

    failure_class = FailureClass.TOOL_ERROR


class VerifierError(GymstreamError):
    """The verifier raised: a bug in the environment, not retriable."""

    failure_class = FailureClass.VERIFIER_ERROR


class ServerError(_CallFailure):
    """A NeMo Gym server (resources server, remote agent) failed: class, status, attempts."""


class ServerCallError(ServerError):
    """The server could not be reached, timed out or kept answering 5xx: a retry may cure it."""

    retriable = True
    failure_class = FailureClass.RESOURCES_SERVER_UNAVAILABLE


class ServerResponseError(ServerError):
    """The server refused the request (4xx) or its verifier crashed (a 500 from /verify)."""

    failure_class = FailureClass.RESOURCES_SERVER_ERROR
