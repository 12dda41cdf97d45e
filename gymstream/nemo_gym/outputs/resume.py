"""Resume: decide what a run must redo from what its output files already hold.

Used by ``collect`` / ``produce`` with the run id of an existing output (NeMo Gym's
``resume_from_cache``) and by ``retry-failures``. A rollout needs nothing more when it is in the
output, or failed terminally, or failed on its last allowed attempt. A non-terminal failure with
attempts left is *retried*: it is moved out of the failures file (into
``<stem>_failures_history.jsonl``, nothing is deleted) and published again with the next attempt
number; the run file records that attempt so that a stale failure message of an earlier attempt
can never count for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gymstream.nemo_gym.outputs.files import (
    OutputPaths,
    iter_rows,
    move_to_history,
    read_done_ids,
    read_run_file,
    write_run_file,
)
from gymstream.nemo_gym.outputs.output_row import (
    ATTEMPT_INDEX,
    FAILURE_TERMINAL,
    ROLLOUT_INDEX,
    TASK_INDEX,
    agent_of,
    input_row,
)
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import rollout_id

__all__ = ["DEFAULT_MAX_ATTEMPTS", "ResumePlan", "RetryTask", "apply_plan", "plan_resume"]

DEFAULT_MAX_ATTEMPTS = 3  # NeMo Gym retries failures up to 3 attempts


@dataclass(frozen=True, slots=True)
class RetryTask:
    """A failed rollout to publish again, with everything a task message needs."""

    agent: str
    task_index: int
    rollout_index: int
    attempt: int
    row: dict[str, Any]


@dataclass
class ResumePlan:
    """``done``: rollout ids that need nothing; ``retry``: failures to publish again."""

    run_id: str
    done: set[str] = field(default_factory=set)
    retry: dict[str, RetryTask] = field(default_factory=dict)
    exhausted: int = 0

    @property
    def attempts(self) -> dict[str, int]:
        return {rid: task.attempt for rid, task in self.retry.items()}


def plan_resume(paths: OutputPaths, run_id: str, *, max_attempts: int) -> ResumePlan:
    """Read the output and failures files of ``run_id``; nothing is changed on disk."""
    plan = ResumePlan(run_id)
    plan.done = read_done_ids(paths.output, run_id)
    for row in iter_rows(paths.failures):
        agent = agent_of(row)
        task_index, rollout_index = int(row[TASK_INDEX]), int(row[ROLLOUT_INDEX])
        rid = rollout_id(run_id, agent, task_index, rollout_index)
        if rid in plan.done:
            continue
        attempt = int(row.get(ATTEMPT_INDEX, 0))
        terminal = bool(row.get(FAILURE_TERMINAL, True))
        if terminal or attempt + 1 >= max_attempts:
            plan.exhausted += 0 if terminal else 1
            plan.done.add(rid)
            plan.retry.pop(rid, None)
            continue
        previous = plan.retry.get(rid)
        if previous is None or previous.attempt <= attempt:
            plan.retry[rid] = RetryTask(
                agent, task_index, rollout_index, attempt + 1, input_row(row)
            )
    return plan


def apply_plan(paths: OutputPaths, plan: ResumePlan) -> None:
    """Move the retried failures to the history file and record their new attempt numbers."""
    move_to_history(paths, plan.run_id, plan.retry.keys())
    state = read_run_file(paths) or {"run_id": plan.run_id}
    retried = dict(state.get("retried", {}))
    retried.update(plan.attempts)
    state["retried"] = retried
    write_run_file(paths, ENCODER.encode(state))
