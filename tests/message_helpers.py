"""Result and failure messages for unit tests, with defaults: a test states only what it changes.

``from message_helpers import result_message, failure_message``. The output row of a result is
``{"task": task, "rollout": rollout}``; rollout ids follow ``wire.keys.rollout_id``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import rollout_id
from gymstream.wire.messages import FailureMessage, ResultMessage

RUN = "r1"


def result_message(
    task: int,
    rollout: int = 0,
    *,
    agent: str = "a",
    reward: float | None = None,
    version: int | None = None,
    run: str = RUN,
) -> ResultMessage:
    """A scored rollout; the reward defaults to the rollout index."""
    return ResultMessage(
        run_id=run,
        rollout_id=rollout_id(run, agent, task, rollout),
        agent=agent,
        task_index=task,
        rollout_index=rollout,
        output=msgspec.Raw(ENCODER.encode({"task": task, "rollout": rollout})),
        reward=float(rollout) if reward is None else reward,
        policy_version=version,
    )


def failure_message(
    task: int,
    rollout: int = 0,
    *,
    agent: str = "a",
    attempt: int = 0,
    row: dict[str, Any] | None = None,
    run: str = RUN,
) -> FailureMessage:
    """A terminal ``model_unavailable`` failure of one rollout."""
    return FailureMessage(
        run_id=run,
        rollout_id=rollout_id(run, agent, task, rollout),
        agent=agent,
        task_index=task,
        rollout_index=rollout,
        failure_class="model_unavailable",
        failure_type="ModelCallError",
        message="down",
        terminal=True,
        attempt=attempt,
        row=row,
    )
