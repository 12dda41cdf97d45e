"""The worker's pure outcome step: every way a task ends -> the exact message to publish."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import msgspec
import pytest

from gymstream.errors import (
    ConfigError,
    GymstreamError,
    ModelCallError,
    ModelResponseError,
    RolloutDeadlineError,
    RowError,
    ToolError,
    VerifierError,
)
from gymstream.nemo_gym.outputs.result import RolloutResult
from gymstream.wire.codec import DECODE_FAILURE, DECODE_RESULT, ENCODER
from gymstream.wire.messages import FailureClass, FailureMessage, TaskMessage
from gymstream.worker.outcome import (
    Classified,
    OutcomeStep,
    Outgoing,
    Where,
    classify,
    pick_policy_version,
    usage_tokens,
)

STEP = OutcomeStep(
    agent="agent_a",
    worker_id="host-1-abcd",
    results_topic="t.results",
    failures_topic="t.failures",
    max_message_bytes=2048,
    model_base_url="http://model-a:8000/v1",
    model_name="model-a",
)
WHERE = Where("gymstream.tasks.agent_a", 3, 42)
ROW: dict[str, Any] = {
    "id": 7,
    "responses_create_params": {"input": "hi"},
    "agent_ref": {"name": "agent_a", "type": "responses_api_agents"},
    "extra": [1, 2],
}


def make_task(**changes: Any) -> TaskMessage:
    fields: dict[str, Any] = {
        "run_id": "run1",
        "rollout_id": "run1/agent_a/5/2",
        "agent": "agent_a",
        "task_index": 5,
        "rollout_index": 2,
        "row": ROW,
        "attempt": 1,
        "created_ms": 1_000,
        "policy_version": None,
    }
    fields.update(changes)
    return TaskMessage(**fields)


def failure_of(out: Outgoing) -> FailureMessage:
    """The failure as Kafka will carry it (decoded from the bytes), checked against the record."""
    decoded = DECODE_FAILURE.decode(out.value)
    assert out.failure is not None
    assert decoded == out.failure
    return decoded


# --- decode ---------------------------------------------------------------------------------
def test_a_task_message_decodes_to_its_task() -> None:
    task = make_task()
    assert STEP.decode(ENCODER.encode(task), WHERE, finished_ms=9) == task


def test_an_oversize_message_is_poison_with_its_position() -> None:
    out = STEP.decode(b"x" * 2049, WHERE, finished_ms=9)
    assert isinstance(out, Outgoing)
    assert (out.topic, out.key, out.failure_class) == (
        "t.failures",
        b"gymstream.tasks.agent_a/3/42",
        "poison_message",
    )
    assert failure_of(out) == FailureMessage(
        run_id="",
        rollout_id="poison:gymstream.tasks.agent_a/3/42",
        agent="agent_a",
        task_index=-1,
        rollout_index=-1,
        failure_class="poison_message",
        failure_type="oversize",
        message="task message of 2049 bytes exceeds the worker's limit of 2048",
        terminal=True,
        finished_ms=9,
        worker_id="host-1-abcd",
        topic="gymstream.tasks.agent_a",
        partition=3,
        offset=42,
    )


@pytest.mark.parametrize("value", [b"{not json", b'{"run_id": "r"}', b"[]"])
def test_an_undecodable_message_is_poison(value: bytes) -> None:
    out = STEP.decode(value, WHERE, finished_ms=9)
    assert isinstance(out, Outgoing)
    failure = failure_of(out)
    assert (failure.failure_class, failure.failure_type, failure.terminal) == (
        FailureClass.POISON_MESSAGE,
        "undecodable",
        True,
    )
    assert failure.message.startswith("not a task message: ")
    assert (failure.topic, failure.partition, failure.offset) == ("gymstream.tasks.agent_a", 3, 42)


def test_a_task_for_another_agent_is_unknown_agent_and_keeps_its_row() -> None:
    task = make_task(agent="agent_b", rollout_id="run1/agent_b/5/2")
    out = STEP.decode(ENCODER.encode(task), WHERE, finished_ms=9)
    assert isinstance(out, Outgoing)
    assert (out.topic, out.key) == ("t.failures", b"run1/agent_b/5")
    assert failure_of(out) == FailureMessage(
        run_id="run1",
        rollout_id="run1/agent_b/5/2",
        agent="agent_b",
        task_index=5,
        rollout_index=2,
        failure_class="unknown_agent",
        failure_type="UnknownAgent",
        message="task for agent 'agent_b' arrived on gymstream.tasks.agent_a, served by 'agent_a'",
        terminal=True,
        attempts=1,
        attempt=1,
        row=ROW,
        created_ms=1_000,
        finished_ms=9,
        worker_id="host-1-abcd",
        topic="gymstream.tasks.agent_a",
        partition=3,
        offset=42,
    )


# --- classify -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            ModelCallError(
                "down", failure_class=FailureClass.MODEL_HTTP_5XX, http_status=503, attempts=4
            ),
            Classified(FailureClass.MODEL_HTTP_5XX, "ModelCallError", False, 503, 4),
        ),
        (
            ModelCallError("slow", failure_class=FailureClass.MODEL_TIMEOUT, attempts=3),
            Classified(FailureClass.MODEL_TIMEOUT, "ModelCallError", False, None, 3),
        ),
        (
            ModelCallError("x"),
            Classified(FailureClass.MODEL_UNAVAILABLE, "ModelCallError", False, None, 1),
        ),
        (
            ModelResponseError("no", failure_class=FailureClass.MODEL_HTTP_4XX, http_status=400),
            Classified(FailureClass.MODEL_HTTP_4XX, "ModelResponseError", True, 400, 1),
        ),
        (
            ModelResponseError("x", failure_class=FailureClass.MODEL_REQUEST_UNSUPPORTED),
            Classified(FailureClass.MODEL_REQUEST_UNSUPPORTED, "ModelResponseError", True),
        ),
        (
            RolloutDeadlineError("late"),
            Classified(FailureClass.ROLLOUT_DEADLINE, "RolloutDeadlineError", False),
        ),
        (ToolError("t"), Classified(FailureClass.TOOL_ERROR, "ToolError", True)),
        (VerifierError("v"), Classified(FailureClass.VERIFIER_ERROR, "VerifierError", True)),
        (RowError("<row>", 0, "f", "p"), Classified(FailureClass.BAD_INPUT, "RowError", True)),
        (ConfigError("c"), Classified(FailureClass.CONFIG_ERROR, "ConfigError", True)),
        (GymstreamError("g"), Classified(FailureClass.INTERNAL_ERROR, "GymstreamError", True)),
        (KeyError("k"), Classified(FailureClass.INTERNAL_ERROR, "KeyError", True)),
        (TimeoutError(), Classified(FailureClass.INTERNAL_ERROR, "TimeoutError", True)),
    ],
)
def test_classify(exc: BaseException, expected: Classified) -> None:
    assert classify(exc) == expected


# --- failed ---------------------------------------------------------------------------------
def test_a_failed_rollout_is_a_typed_failure_keyed_by_its_task() -> None:
    exc = ModelCallError(
        "endpoint down", failure_class=FailureClass.MODEL_CONNECTION_ERROR, attempts=3
    )
    out = STEP.failed(make_task(), exc, where=WHERE, finished_ms=5_000)
    assert (out.topic, out.key, out.failure_class, out.reward) == (
        "t.failures",
        b"run1/agent_a/5",
        "model_connection_error",
        0.0,
    )
    assert failure_of(out) == FailureMessage(
        run_id="run1",
        rollout_id="run1/agent_a/5/2",
        agent="agent_a",
        task_index=5,
        rollout_index=2,
        failure_class="model_connection_error",
        failure_type="ModelCallError",
        message="endpoint down",
        terminal=False,
        attempts=3,
        attempt=1,
        http_status=None,
        row=ROW,
        created_ms=1_000,
        finished_ms=5_000,
        worker_id="host-1-abcd",
        topic="gymstream.tasks.agent_a",
        partition=3,
        offset=42,
    )


def test_a_deadline_is_a_retriable_failure() -> None:
    out = STEP.failed(
        make_task(), RolloutDeadlineError("ran past 300 s"), where=WHERE, finished_ms=1
    )
    failure = failure_of(out)
    assert (failure.failure_class, failure.failure_type, failure.terminal, failure.message) == (
        "rollout_deadline",
        "RolloutDeadlineError",
        False,
        "ran past 300 s",
    )


# --- succeeded ------------------------------------------------------------------------------
def test_a_finished_rollout_is_a_result_envelope() -> None:
    result = RolloutResult(
        verify_result={
            "reward": 0.5,
            "response": {"id": "r", "usage": {"input_tokens": 7, "output_tokens": 3}},
            "hits": 3,
        },
        timings={"model_s": 1.5, "tools_s": 0.25, "verify_s": 0.125},
        turns=1,
    )
    task = make_task()
    out = STEP.succeeded(task, result, policy_version=4, total_s=2.0, finished_ms=7_000)
    assert (out.topic, out.key, out.failure, out.failure_class, out.reward) == (
        "t.results",
        b"run1/agent_a/5",
        None,
        None,
        0.5,
    )
    envelope = DECODE_RESULT.decode(out.value)
    assert msgspec.structs.asdict(envelope) | {"output": None} == {
        "run_id": "run1",
        "rollout_id": "run1/agent_a/5/2",
        "agent": "agent_a",
        "task_index": 5,
        "rollout_index": 2,
        "output": None,
        "reward": 0.5,
        "attempt": 1,
        "created_ms": 1_000,
        "finished_ms": 7_000,
        "worker_id": "host-1-abcd",
        "policy_version": 4,
        "timings": {"model_s": 1.5, "tools_s": 0.25, "verify_s": 0.125, "total_s": 2.0},
        "tokens": {"input_tokens": 7, "output_tokens": 3},
        "model_base_url": "http://model-a:8000/v1",  # which model produced it
        "model_name": "model-a",
    }
    output = json.loads(bytes(envelope.output))
    assert (output["reward"], output["_ng_task_index"], output["_ng_rollout_index"]) == (0.5, 5, 2)
    assert result.timings == {"model_s": 1.5, "tools_s": 0.25, "verify_s": 0.125}  # not mutated


def test_a_result_without_a_reward_scores_zero() -> None:
    result = RolloutResult(verify_result={"response": {}}, timings={}, turns=1)
    out = STEP.succeeded(make_task(), result, policy_version=None, total_s=0.0, finished_ms=1)
    assert out.reward == 0.0
    assert DECODE_RESULT.decode(out.value).policy_version is None


# --- too large, versions --------------------------------------------------------------------
def succeeded_out(task: TaskMessage) -> Outgoing:
    result = RolloutResult(verify_result={"reward": 1.0, "response": {}}, timings={}, turns=1)
    return STEP.succeeded(
        task, result, policy_version=None, total_s=0.0, finished_ms=1, where=WHERE
    )


def test_a_result_too_large_for_kafka_becomes_a_failure_the_sink_can_count() -> None:
    task = make_task()
    result_out = succeeded_out(task)
    out = STEP.too_large(result_out, ValueError("message of 9 MB"), finished_ms=7)
    assert (out.topic, out.key, out.failure_class) == (
        "t.failures",
        b"run1/agent_a/5",
        "result_too_large",
    )
    failure = failure_of(out)
    # the identity the sink counts by: run id, rollout id, agent, task and rollout index
    assert (failure.run_id, failure.rollout_id, failure.agent) == (
        "run1",
        task.rollout_id,
        "agent_a",
    )
    assert (failure.task_index, failure.rollout_index, failure.attempt) == (5, 2, 1)
    assert (failure.terminal, failure.failure_type, failure.row) == (True, "ValueError", ROW)
    assert failure.message == (
        f"result message of {len(result_out.value)} bytes refused by Kafka: message of 9 MB"
    )
    assert (failure.topic, failure.partition, failure.offset) == tuple(WHERE)


def test_a_failure_too_large_in_turn_is_sent_without_its_row() -> None:
    first = STEP.too_large(succeeded_out(make_task()), ValueError("big"), finished_ms=7)
    second = failure_of(STEP.too_large(first, ValueError("still big"), finished_ms=8))
    assert second == msgspec.structs.replace(failure_of(first), row=None)
    with pytest.raises(ValueError, match="still big"):
        STEP.too_large(
            Outgoing("t.failures", b"k", b"v", second), ValueError("still big"), finished_ms=9
        )


def test_an_oversize_task_is_poison_with_its_identity() -> None:
    task = make_task(row={**ROW, "blob": "x" * 4096})
    failure = failure_of(_decoded_outgoing(ENCODER.encode(task)))
    assert (failure.run_id, failure.rollout_id, failure.agent) == (
        "run1",
        task.rollout_id,
        "agent_a",
    )
    assert (failure.task_index, failure.rollout_index, failure.attempt) == (5, 2, 1)
    assert (failure.failure_class, failure.failure_type, failure.row) == (
        "poison_message",
        "oversize",
        None,
    )


def test_a_task_with_a_bad_row_is_poison_with_its_identity() -> None:
    value = ENCODER.encode({**msgspec.structs.asdict(make_task()), "row": [1, 2]})
    failure = failure_of(_decoded_outgoing(value))
    assert (failure.run_id, failure.rollout_id, failure.failure_type) == (
        "run1",
        "run1/agent_a/5/2",
        "undecodable",
    )


def _decoded_outgoing(value: bytes) -> Outgoing:
    out = STEP.decode(value, WHERE, finished_ms=9)
    assert isinstance(out, Outgoing)
    return out


@pytest.mark.parametrize(
    ("live", "task_version", "default", "expected"),
    [
        (3, 2, 1, 3),  # the trainer's live version wins
        (None, 2, 1, 2),  # else the task's
        (None, None, 1, 1),  # else the worker's
        (None, None, None, None),
        (0, 2, 1, 0),  # version 0 is a version
        (None, 0, 1, 0),
    ],
)
def test_pick_policy_version(
    live: int | None, task_version: int | None, default: int | None, expected: int | None
) -> None:
    task = make_task(policy_version=task_version)
    assert pick_policy_version(live, task, default) == expected


@pytest.mark.parametrize(
    ("verify", "tokens"),
    [
        (
            {"response": {"usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}},
            {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
        ),
        ({"response": {"usage": None}}, {}),
        ({"response": {"usage": {"input_tokens": "5", "output_tokens": -1}}}, {}),
        ({"response": "not an object"}, {}),
        ({}, {}),
    ],
)
def test_usage_tokens_reads_only_counts_the_model_sent(
    verify: dict[str, object], tokens: dict[str, int]
) -> None:
    assert usage_tokens(verify) == tokens


def test_by_default_a_worker_takes_every_task_its_topic_carries() -> None:
    """One size limit from one place: the task topic's max.message.bytes, which produce checks
    (a 9 MB row was published, then poison for a worker whose own limit was 8 MB)."""
    from gymstream.settings import WorkerSettings

    assert WorkerSettings().max_message_bytes is None
    step = dataclasses.replace(STEP, max_message_bytes=WorkerSettings().max_message_bytes)
    row = {"responses_create_params": {"input": "x" * (9 * 1024 * 1024)}}
    value = ENCODER.encode(
        TaskMessage(run_id="r", rollout_id="r/a/0/0", agent=STEP.agent, task_index=0,
                    rollout_index=0, row=row)
    )  # fmt: skip
    decoded = step.decode(value, WHERE, finished_ms=0)
    assert isinstance(decoded, TaskMessage)
