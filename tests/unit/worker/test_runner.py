"""One task through the runner, without a broker: the agent loop, the deadline, publishing."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from gymstream.errors import RolloutDeadlineError
from gymstream.rollout.agent import LoopAgent
from gymstream.rollout.environment import SimpleEnvironment
from gymstream.rollout.sessions import InProcess
from gymstream.wire.codec import DECODE_FAILURE, DECODE_RESULT, DECODE_TASK, ENCODER
from gymstream.wire.messages import FailureClass, TaskMessage
from gymstream.worker.failure_log import FailureLog
from gymstream.worker.outcome import OutcomeStep, Outgoing, Where
from gymstream.worker.runner import TaskRunner

WHERE = Where("gymstream.tasks.agent_a", 0, 7)
ANSWER = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "cold", "annotations": []}],
        }
    ],
}


@dataclass
class Model:
    """Answers ANSWER after ``delay_s``, or raises ``error``."""

    delay_s: float = 0.0
    error: Exception | None = None

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return ANSWER


async def verify(row: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    return {"reward": 1.0}


ENV = SimpleEnvironment(name="fake", tools={}, verify_fn=verify)


def make_runner(model: Model, *, deadline_s: float = 5.0, live: int | None = None) -> TaskRunner:
    step = OutcomeStep(
        agent="agent_a",
        worker_id="w",
        results_topic="t.results",
        failures_topic="t.failures",
        max_message_bytes=1 << 20,
    )
    return TaskRunner(
        step,
        LoopAgent(InProcess(ENV), model, "served", max_steps=2),
        deadline_s=deadline_s,
        default_policy_version=1,
        live_version=lambda run_id: live,
        failure_log=FailureLog("http://model"),
    )


def task_bytes(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "run_id": "run1",
        "rollout_id": "run1/agent_a/0/0",
        "agent": "agent_a",
        "task_index": 0,
        "rollout_index": 0,
        "row": {"responses_create_params": {"input": "weather?"}},
    }
    fields.update(changes)
    return ENCODER.encode(TaskMessage(**fields))


async def test_a_rollout_past_its_deadline_raises_rollout_deadline_error() -> None:
    runner = make_runner(Model(delay_s=10.0), deadline_s=0.05)
    task = DECODE_TASK.decode(task_bytes())
    with pytest.raises(RolloutDeadlineError, match="past its deadline") as info:
        await asyncio.wait_for(runner.rollout(task), 5.0)
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_a_rollout_past_its_deadline_is_a_retriable_rollout_deadline_failure() -> None:
    runner = make_runner(Model(delay_s=10.0), deadline_s=0.05)
    out = await asyncio.wait_for(runner.outcome(task_bytes(), WHERE), 5.0)
    failure = DECODE_FAILURE.decode(out.value)
    assert (out.topic, out.failure_class) == ("t.failures", FailureClass.ROLLOUT_DEADLINE)
    assert (failure.failure_type, failure.terminal, failure.message, failure.offset) == (
        "RolloutDeadlineError",
        False,
        "rollout ran past its deadline of 0 s",
        7,
    )


async def test_a_finished_rollout_is_a_result_under_the_live_version() -> None:
    out = await make_runner(Model(), live=9).outcome(task_bytes(policy_version=3), WHERE)
    result = DECODE_RESULT.decode(out.value)
    assert (out.topic, out.failure, result.reward, result.policy_version) == (
        "t.results",
        None,
        1.0,
        9,
    )
    assert set(result.timings) == {"model_s", "tools_s", "verify_s", "total_s"}
    assert result.timings["total_s"] >= result.timings["model_s"]


async def test_without_a_live_version_the_tasks_then_the_workers_version_is_used() -> None:
    runner = make_runner(Model())
    with_task_version = await runner.outcome(task_bytes(policy_version=3), WHERE)
    without = await runner.outcome(task_bytes(), WHERE)
    assert DECODE_RESULT.decode(with_task_version.value).policy_version == 3
    assert DECODE_RESULT.decode(without.value).policy_version == 1


async def test_a_bug_in_a_rollout_is_an_internal_error_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = await make_runner(Model(error=ZeroDivisionError("oops"))).outcome(task_bytes(), WHERE)
    failure = DECODE_FAILURE.decode(out.value)
    assert (failure.failure_class, failure.failure_type, failure.terminal, failure.message) == (
        "internal_error",
        "ZeroDivisionError",
        True,
        "oops",
    )
    [record] = [r for r in caplog.records if r.name == "gymstream.worker.runner"]
    assert record.getMessage() == "rollout run1/agent_a/0/0 raised"
    assert record.exc_info is not None


async def test_a_poison_message_never_reaches_the_model() -> None:
    model = Model(error=AssertionError("the model was called"))
    out = await make_runner(model).outcome(b"garbage", WHERE)
    assert out.failure_class == FailureClass.POISON_MESSAGE


def test_report_logs_poison_by_position_and_rollouts_through_the_failure_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = make_runner(Model())
    poison = runner.step.decode(b"garbage", WHERE, finished_ms=0)
    assert isinstance(poison, Outgoing)
    runner.report(poison)
    assert (
        caplog.records[-1]
        .getMessage()
        .startswith("poison message at gymstream.tasks.agent_a/0/7: not a task message: ")
    )
    other = runner.step.decode(task_bytes(agent="agent_b"), WHERE, finished_ms=0)
    assert isinstance(other, Outgoing)
    runner.report(other)
    assert runner.failure_log.warned_at.keys() == {FailureClass.UNKNOWN_AGENT}
    runner.report(Outgoing("t.results", b"k", b"{}"))  # a result: nothing to say
    assert runner.failure_log.warned_at.keys() == {FailureClass.UNKNOWN_AGENT}


@dataclass
class Producer:
    """Fails the first sends with ``errors``, then records what it is sent."""

    errors: list[Exception]
    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    async def send(self, topic: str, value: bytes, *, key: bytes) -> asyncio.Future[None]:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_publish_replaces_a_message_too_large_by_its_failure() -> None:
    runner = make_runner(Model())
    producer = Producer([MessageSizeTooLargeError()])
    task = TaskMessage(
        run_id="run1",
        rollout_id="run1/agent_a/0/0",
        agent="agent_a",
        task_index=0,
        rollout_index=0,
        row={},
    )
    await runner.publish(
        producer, Outgoing("t.results", b"run1/agent_a/0", b"{...}", task=task, where=WHERE)
    )
    [(topic, key, value)] = producer.sent
    assert (topic, key) == ("t.failures", b"run1/agent_a/0")
    failure = DECODE_FAILURE.decode(value)
    assert (failure.failure_class, failure.run_id, failure.rollout_id) == (
        FailureClass.RESULT_TOO_LARGE,
        "run1",
        "run1/agent_a/0/0",
    )


async def test_publish_retries_a_broker_outage_until_the_send_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = Producer([KafkaConnectionError()])
    out = Outgoing("t.results", b"k", b"v")
    await asyncio.wait_for(make_runner(Model()).publish(producer, out), 5.0)
    assert producer.sent == [("t.results", b"k", b"v")]
    assert any(r.levelno == logging.WARNING for r in caplog.records)


async def test_skip_verification_scores_the_configured_reward_without_verifying() -> None:
    async def never(row: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("verify must not be called under skip_verification")

    env = InProcess(SimpleEnvironment(name="fake", tools={}, verify_fn=never))
    agent = LoopAgent(env, Model(), "served", skip_verification_reward=0.25)
    runner = dataclasses.replace(make_runner(Model()), agent=agent)
    out = await runner.outcome(task_bytes(), WHERE)
    result = DECODE_RESULT.decode(out.value)
    assert (out.topic, result.reward) == ("t.results", 0.25)
    assert msgspec.json.decode(result.output)["verification_skipped"] is True
