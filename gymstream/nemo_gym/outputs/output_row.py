"""The NeMo Gym output row: every row gymstream writes for a rollout is built here, and only here.

Four shapes, each as NeMo Gym 0.7.0's collector (``rollout_collection.py``) writes it:

- ``verify_result``: what the verifier returns (the agent loop's part): the request as sent,
  the whole-trajectory ``response``, ``reward``, ``mask_sample``, ``failure_kind``,
  ``failure_reason``, the verifier's own fields, then the row's other task fields (a superset of
  NeMo Gym's, which keeps only the fields a verifier declares; the contract allows it), named in
  ``_gs_task_fields`` so that ``nemo_gym_fields`` can give back NeMo Gym's row (metrics are
  computed over that, never over a task's ``seed`` or ``level_id``).
- ``output_row``: one successful rollout in ``OUT.jsonl``: the verify result, then the
  collector's stamps ``_ng_task_index``, ``_ng_rollout_index``, ``agent_ref``, for a retried
  rollout only ``_ng_attempt_index``, and, where the config names the environment server that
  fronts the agent, ``_ng_environment_server`` (its instance name) and ``_ng_result_type`` (its
  implementation under ``environment_servers:``), as NeMo Gym 0.7.0's collector stamps them.
- ``failure_row``: one failed rollout in ``OUT_failures.jsonl``: the task row (so a retry needs
  nothing else), the stamps, NeMo Gym's ``_ng_failure_*`` keys and gymstream's ``_gs_*`` ones.
- ``materialized_row``: one expanded input in ``OUT_materialized_inputs.jsonl``.

The stamps follow one rule everywhere: ``_ng_*`` keys are written by the collector, never carried
over from a row (a row taken from an earlier output would otherwise bring its stale
``_ng_failure_*`` or ``_ng_attempt_index`` along), and ``agent_ref`` is the row's own object,
kept whole (NeMo Gym keeps extra fields such as ``type``), naming the agent that served it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from gymstream.wire.keys import location, rollout_id
from gymstream.wire.messages import FailureMessage, TaskMessage

__all__ = [
    "AGENT_REF",
    "ATTEMPT_INDEX",
    "ENVIRONMENT_SERVER",
    "FAILURE_CLASS",
    "FAILURE_MESSAGE",
    "FAILURE_TERMINAL",
    "FAILURE_TYPE",
    "PARAMS",
    "RESULT_TYPE",
    "ROLLOUT_INDEX",
    "TASK_FIELDS",
    "TASK_INDEX",
    "TOKEN_PREFIX_BREAKS",
    "EnvironmentServer",
    "agent_of",
    "failure_row",
    "input_row",
    "is_collector_key",
    "materialized_row",
    "nemo_gym_fields",
    "output_row",
    "row_rollout_id",
    "verify_result",
]

PARAMS: Final = "responses_create_params"
AGENT_REF: Final = "agent_ref"
TASK_INDEX: Final = "_ng_task_index"
ROLLOUT_INDEX: Final = "_ng_rollout_index"
ATTEMPT_INDEX: Final = "_ng_attempt_index"
FAILURE_CLASS: Final = "_ng_failure_class"
FAILURE_TYPE: Final = "_ng_failure_type"
FAILURE_MESSAGE: Final = "_ng_failure_message"
FAILURE_TERMINAL: Final = "_ng_failure_terminal"
ENVIRONMENT_SERVER: Final = "_ng_environment_server"
RESULT_TYPE: Final = "_ng_result_type"
TASK_FIELDS: Final = "_gs_task_fields"
"""The row's task fields gymstream kept beyond the verifier's answer (NeMo Gym's row drops them)."""
TOKEN_PREFIX_BREAKS: Final = "_gs_token_prefix_breaks"  # noqa: S105 (a key name, not a password)
"""On a row whose turns carry token ids only: how many turns' prompt ids do not extend the
previous turn's prompt + generation ids (0: the trajectory is one consistent token sequence;
see ``nemo.token_ids.prefix_breaks``). NeMo Gym has no such key, hence ``_gs_``."""

_COLLECTOR_PREFIX: Final = "_ng_"  # NeMo Gym's: keys its collector writes itself
_GYMSTREAM_PREFIX: Final = "_gs_"  # ours: failure details NeMo Gym has no key for


class EnvironmentServer(NamedTuple):
    """The NeMo Gym environment server that fronts an agent: the two stamps it gives a row."""

    instance: str  # its config instance name: ``_ng_environment_server``
    implementation: str  # its type under ``environment_servers:``: ``_ng_result_type``


def is_collector_key(key: str) -> bool:
    """True for the keys the collector writes (``_ng_*``): never task data, never averaged."""
    return key.startswith(_COLLECTOR_PREFIX)


def _is_task_field(key: str) -> bool:
    """A row's own field; never a stamp, nor a ``_gs_*`` key a row taken from an earlier
    output brings along (they describe that output, not this rollout)."""
    return (
        key not in (PARAMS, AGENT_REF)
        and not is_collector_key(key)
        and not key.startswith(_GYMSTREAM_PREFIX)
    )


def verify_result(
    row: Mapping[str, Any],
    *,
    params: dict[str, Any],
    response: dict[str, Any],
    reward: float,
    fields: Mapping[str, Any],
    token_prefix_breaks: int | None = None,
) -> dict[str, Any]:
    """The verifier's result for ``row``: NeMo Gym's defaults, the verifier's ``fields`` over
    them (``reward`` always the float given), then the row's task fields the verifier did not set.
    ``token_prefix_breaks`` (when the turns carry token ids) is written last as
    ``TOKEN_PREFIX_BREAKS``.
    """
    result: dict[str, Any] = {
        PARAMS: params,
        "response": response,
        "reward": reward,
        "mask_sample": False,
        "failure_kind": None,
        "failure_reason": None,
    }
    result.update(fields)
    result["reward"] = reward
    kept = [key for key in row if _is_task_field(key) and key not in result]
    for key in kept:
        result[key] = row[key]
    if kept:
        result[TASK_FIELDS] = kept
    if token_prefix_breaks is not None:
        result[TOKEN_PREFIX_BREAKS] = token_prefix_breaks
    return result


def _agent_ref(row: Mapping[str, Any] | None, agent: str) -> dict[str, Any]:
    ref = row.get(AGENT_REF) if row is not None else None
    return {**ref, "name": agent} if isinstance(ref, dict) else {"name": agent}


def _without_stamps(row: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (row or {}).items() if not is_collector_key(k)}


def _stamp(
    into: dict[str, Any], row: Mapping[str, Any] | None, agent: str, task: int, rollout: int
) -> dict[str, Any]:
    """Add the collector's stamps to ``into`` last, in NeMo Gym's order (task index, rollout
    index, agent_ref), replacing any it has; returns ``into``."""
    for key in (TASK_INDEX, ROLLOUT_INDEX, AGENT_REF):
        into.pop(key, None)
    into[TASK_INDEX] = task
    into[ROLLOUT_INDEX] = rollout
    into[AGENT_REF] = _agent_ref(row, agent)
    return into


def output_row(
    result: Mapping[str, Any],
    task: TaskMessage,
    environment_server: EnvironmentServer | None = None,
) -> dict[str, Any]:
    """The ``OUT.jsonl`` row of a successful rollout of ``task`` whose verify result is ``result``.

    ``result`` comes from ``verify_result``, which never carries a row's own ``_ng_*`` keys;
    ``_ng_attempt_index`` is stamped only on a retried rollout (attempt > 0), as NeMo Gym does;
    ``environment_server`` (the one fronting the agent, when the config names one) last.
    """
    row = _stamp(dict(result), task.row, task.agent, task.task_index, task.rollout_index)
    if task.attempt > 0:
        row[ATTEMPT_INDEX] = task.attempt
    if environment_server is not None:
        row[ENVIRONMENT_SERVER] = environment_server.instance
        row[RESULT_TYPE] = environment_server.implementation
    return row


def nemo_gym_fields(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A written row as NeMo Gym's collector would have written it: without the task fields
    gymstream kept (``TASK_FIELDS``) and without gymstream's own ``_gs_*`` keys."""
    extra = stored.get(TASK_FIELDS)
    dropped = set(extra) if isinstance(extra, list) else set()
    return {
        k: v for k, v in stored.items() if k not in dropped and not k.startswith(_GYMSTREAM_PREFIX)
    }


def failure_row(failure: FailureMessage) -> dict[str, Any]:
    """The ``OUT_failures.jsonl`` row of a failed rollout: task row, stamps, failure keys.

    ``_ng_attempt_index`` is always written (0 for a first attempt): resume reads it.
    """
    row = _stamp(
        _without_stamps(failure.row),
        failure.row,
        failure.agent,
        failure.task_index,
        failure.rollout_index,
    )
    row.update(
        {
            FAILURE_CLASS: failure.failure_class,
            FAILURE_TYPE: failure.failure_type,
            FAILURE_MESSAGE: failure.message,
            FAILURE_TERMINAL: failure.terminal,
            ATTEMPT_INDEX: failure.attempt,
            "_gs_attempts": failure.attempts,
            "_gs_http_status": failure.http_status,
            "_gs_location": (
                location(failure.topic, failure.partition or 0, failure.offset or 0)
                if failure.topic
                else None
            ),
        }
    )
    return row


def materialized_row(
    row: Mapping[str, Any], *, agent: str, task_index: int, rollout_index: int
) -> dict[str, Any]:
    """The ``OUT_materialized_inputs.jsonl`` row of one expanded rollout (before dispatch).

    NeMo Gym's order here: the row with its ``agent_ref`` where the row has it (else last),
    then the two indices.
    """
    out = _without_stamps(row)
    out[AGENT_REF] = _agent_ref(row, agent)
    out[TASK_INDEX] = task_index
    out[ROLLOUT_INDEX] = rollout_index
    return out


def input_row(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The task row back from a failures-file row: everything but the ``_ng_*``/``_gs_*`` keys."""
    return {
        k: v
        for k, v in stored.items()
        if not is_collector_key(k) and not k.startswith(_GYMSTREAM_PREFIX)
    }


def agent_of(stored: Mapping[str, Any]) -> str:
    """The agent named by a written row's ``agent_ref`` ("" when it names none)."""
    ref = stored.get(AGENT_REF)
    name = ref.get("name", "") if isinstance(ref, dict) else ""
    return name if isinstance(name, str) else ""


def row_rollout_id(run_id: str, stored: Mapping[str, Any]) -> str:
    """The rollout id of a written row (output or failure) of run ``run_id``."""
    return rollout_id(run_id, agent_of(stored), int(stored[TASK_INDEX]), int(stored[ROLLOUT_INDEX]))
