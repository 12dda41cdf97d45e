"""What a rollout client hands back for one rollout: NeMo Gym's ``/run`` result, or a typed failure.

- A scored rollout's ``result`` is the output row the worker wrote, less the collector's stamps
  (``_ng_task_index``, ``_ng_rollout_index``, ``_ng_attempt_index``, ``agent_ref``) and gymstream's
  ``_gs_*`` keys: what NeMo Gym's agent ``/run`` returns (``responses_create_params``,
  ``response`` with token ids where the model gives them, ``reward``, the verifier's fields),
  plus the row's other task fields (the contract's superset; NeMo Gym keeps only the fields a
  verifier declares).
- A failed rollout is never a reward. It raises ``RolloutFailedError`` (the typed failure), or,
  with NeMo Gym's ``route_failures_to_sidecar``, is a failure row shaped as NeMo Gym 0.7.0's
  ``_agent_request_failure_row``: ``_ng_failure_class``, ``_ng_failure_type``,
  ``_ng_failure_message``, ``_ng_failure_http_status``, ``_ng_failure_response_body``; plus
  ``_ng_failure_terminal`` (NeMo Gym's retry flag). The class is gymstream's (``FailureClass``:
  ``model_timeout``, ``tool_error``...), finer than NeMo Gym's two (``agent_run_error``,
  ``agent_request_failed``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from gymstream.errors import GymstreamError
from gymstream.nemo_gym.outputs.output_row import (
    AGENT_REF,
    ATTEMPT_INDEX,
    FAILURE_CLASS,
    FAILURE_MESSAGE,
    FAILURE_TERMINAL,
    FAILURE_TYPE,
    ROLLOUT_INDEX,
    TASK_INDEX,
)
from gymstream.wire.messages import FailureMessage, ResultMessage

__all__ = ["RolloutFailedError", "failure_result", "run_result"]

_STAMPS = frozenset({TASK_INDEX, ROLLOUT_INDEX, ATTEMPT_INDEX, AGENT_REF})


class RolloutFailedError(GymstreamError):
    """A rollout of a client run failed (typed: ``failure.failure_class``); never a reward."""

    def __init__(self, failure: FailureMessage, position: int) -> None:
        self.failure = failure
        self.position = position
        """The failed row's index in the rows given to ``run``."""
        super().__init__(
            f"rollout {failure.rollout_id} (row {position}) failed: {failure.failure_class} "
            f"({failure.failure_type}): {failure.message}"
        )


def run_result(message: ResultMessage) -> dict[str, Any]:
    """The ``/run`` result of a scored rollout (see the module doc)."""
    output: dict[str, Any] = msgspec.json.decode(message.output)
    return {k: v for k, v in output.items() if k not in _STAMPS and not k.startswith("_gs_")}


def failure_result(failure: FailureMessage) -> dict[str, Any]:
    """The failure row of a failed rollout, NeMo Gym's sidecar shape (see the module doc)."""
    return {
        FAILURE_CLASS: failure.failure_class,
        FAILURE_TYPE: failure.failure_type,
        FAILURE_MESSAGE: failure.message,
        "_ng_failure_http_status": failure.http_status,
        "_ng_failure_response_body": None,
        FAILURE_TERMINAL: failure.terminal,
    }
