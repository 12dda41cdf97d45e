"""The one NeMo Gym output-row builder: keys, their order, task fields, agent_ref, failure rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gymstream.nemo_gym.outputs.files import OutputPaths
from gymstream.nemo_gym.outputs.output_row import (
    EnvironmentServer,
    agent_of,
    failure_row,
    input_row,
    materialized_row,
    nemo_gym_fields,
    output_row,
    row_rollout_id,
    verify_result,
)
from gymstream.nemo_gym.outputs.resume import plan_resume
from gymstream.wire.codec import ENCODER
from gymstream.wire.messages import FailureMessage, TaskMessage

REF = {"type": "responses_api_agents", "name": "ms_agent"}
PARAMS = {"input": "which synonyms?", "temperature": 1.0}
ROW: dict[str, Any] = {
    "id": 3,
    "responses_create_params": PARAMS,
    "expected_synonym_values": [711, 407],
    "agent_ref": REF,
}
# a row taken from an earlier output: it carries that run's collector stamps
STALE = {
    "_ng_task_index": 99,
    "_ng_rollout_index": 98,
    "_ng_attempt_index": 2,
    "_ng_failure_class": "model_http_5xx",
    "_ng_failure_terminal": False,
}
FIELDS = {"reward": 1, "accuracy": True, "parsed_synonym_values": [711, 407]}
SENT = {**PARAMS, "model": "policy"}
RESPONSE = {"id": "resp_1", "output": [{"type": "message"}]}


def make_result(row: dict[str, Any] = ROW, fields: dict[str, Any] = FIELDS) -> dict[str, Any]:
    return verify_result(row, params=SENT, response=RESPONSE, reward=1.0, fields=fields)


def make_task(row: dict[str, Any] = ROW, *, attempt: int = 0) -> TaskMessage:
    return TaskMessage(
        run_id="r",
        rollout_id="r/ms_agent/4/1",
        agent="ms_agent",
        task_index=4,
        rollout_index=1,
        row=row,
        attempt=attempt,
    )


def make_failure(row: dict[str, Any] | None = ROW, **changes: Any) -> FailureMessage:
    fields: dict[str, Any] = {
        "run_id": "r",
        "rollout_id": "r/ms_agent/4/1",
        "agent": "ms_agent",
        "task_index": 4,
        "rollout_index": 1,
        "failure_class": "model_connection_error",
        "failure_type": "ModelCallError",
        "message": "model endpoint http://m/v1 refused the connection",
        "terminal": False,
        "attempts": 4,
        "attempt": 0,
        "row": row,
        **changes,
    }
    return FailureMessage(**fields)


def test_verify_result_has_nemo_gym_keys_then_verifier_fields_then_task_fields() -> None:
    result = make_result()
    assert list(result) == [
        "responses_create_params",
        "response",
        "reward",
        "mask_sample",
        "failure_kind",
        "failure_reason",
        "accuracy",
        "parsed_synonym_values",
        "id",
        "expected_synonym_values",
        "_gs_task_fields",  # names the task fields NeMo Gym's row would not have
    ]
    assert result["_gs_task_fields"] == ["id", "expected_synonym_values"]
    assert result["responses_create_params"] == SENT
    assert result["reward"] == 1.0
    assert isinstance(result["reward"], float)  # the verifier's int 1 is not kept
    assert (result["mask_sample"], result["failure_kind"], result["failure_reason"]) == (
        False,
        None,
        None,
    )


def test_verifier_fields_win_over_defaults_and_task_fields() -> None:
    result = make_result(fields={"reward": 0.5, "mask_sample": True, "id": "verifier's"})
    assert result["mask_sample"] is True
    assert result["id"] == "verifier's"
    assert result["reward"] == 1.0  # always the reward given (the agent loop's float of it)


def test_verify_result_never_takes_the_rows_collector_keys() -> None:
    result = make_result({**ROW, **STALE})
    assert not [k for k in result if k.startswith("_ng_")]
    assert "agent_ref" not in result


def test_output_row_is_verify_result_then_stamps_in_nemo_gym_order() -> None:
    row = output_row(make_result(), make_task())
    assert list(row)[:3] == ["responses_create_params", "response", "reward"]
    assert list(row)[-3:] == ["_ng_task_index", "_ng_rollout_index", "agent_ref"]
    assert (row["_ng_task_index"], row["_ng_rollout_index"]) == (4, 1)
    assert row["expected_synonym_values"] == [711, 407]  # task fields kept
    assert row["accuracy"] is True  # the verifier's fields kept
    assert "_ng_attempt_index" not in row  # a first attempt is not stamped (NeMo Gym)


def test_output_row_keeps_the_rows_agent_ref_whole() -> None:
    assert output_row(make_result(), make_task())["agent_ref"] == REF


def test_output_row_names_the_agent_when_the_row_has_no_agent_ref() -> None:
    bare = {k: v for k, v in ROW.items() if k != "agent_ref"}
    assert output_row(make_result(bare), make_task(bare))["agent_ref"] == {"name": "ms_agent"}


def test_output_row_of_a_row_from_an_earlier_output_carries_no_stale_stamps() -> None:
    """The worker used to copy the row's own ``_ng_*`` keys into the success row."""
    row = {**ROW, **STALE}
    out = output_row(make_result(row), make_task(row))
    assert (out["_ng_task_index"], out["_ng_rollout_index"]) == (4, 1)
    assert "_ng_failure_class" not in out
    assert "_ng_failure_terminal" not in out
    assert "_ng_attempt_index" not in out


def test_output_row_of_a_retried_rollout_stamps_its_attempt() -> None:
    row = output_row(make_result(), make_task(attempt=2))
    assert row["_ng_attempt_index"] == 2
    assert list(row)[-1] == "_ng_attempt_index"


def test_output_row_stamps_override_a_verifier_that_sets_them() -> None:
    result = make_result(fields={"reward": 1.0, "_ng_task_index": 0, "agent_ref": "x"})
    row = output_row(result, make_task())
    assert (row["_ng_task_index"], row["agent_ref"]) == (4, REF)


def test_failure_row_has_task_row_stamps_and_failure_keys() -> None:
    row = failure_row(make_failure(topic="gs.tasks.ms_agent", partition=2, offset=17))
    assert row == {
        "id": 3,
        "responses_create_params": PARAMS,
        "expected_synonym_values": [711, 407],
        "_ng_task_index": 4,
        "_ng_rollout_index": 1,
        "agent_ref": REF,
        "_ng_failure_class": "model_connection_error",
        "_ng_failure_type": "ModelCallError",
        "_ng_failure_message": "model endpoint http://m/v1 refused the connection",
        "_ng_failure_terminal": False,
        "_ng_attempt_index": 0,
        "_gs_attempts": 4,
        "_gs_http_status": None,
        "_gs_location": "gs.tasks.ms_agent/2/17",
    }
    assert "reward" not in row  # a failure is never a reward of 0


def test_failure_row_keeps_agent_ref_whole_so_a_retry_sees_the_original_row() -> None:
    """Failure rows used to write ``{"name": agent}``: a retried rollout lost ``type``."""
    row = failure_row(make_failure())
    assert row["agent_ref"] == REF
    assert input_row(row) == ROW
    retried = output_row(make_result(input_row(row)), make_task(input_row(row), attempt=1))
    first = output_row(make_result(), make_task())
    assert retried["agent_ref"] == first["agent_ref"] == REF


def test_failure_row_replaces_stale_stamps_of_the_row() -> None:
    row = failure_row(make_failure({**ROW, **STALE, "_ng_failure_stage": "old"}, attempt=1))
    assert (row["_ng_task_index"], row["_ng_rollout_index"]) == (4, 1)
    assert row["_ng_attempt_index"] == 1
    assert row["_ng_failure_class"] == "model_connection_error"
    assert "_ng_failure_stage" not in row


def test_poison_failure_row_has_no_task_row() -> None:
    row = failure_row(make_failure(None, task_index=-1, rollout_index=-1, terminal=True))
    assert row["agent_ref"] == {"name": "ms_agent"}
    assert (row["_ng_task_index"], row["_ng_rollout_index"]) == (-1, -1)
    assert row["_gs_location"] is None


def test_materialized_row_is_the_row_then_stamps() -> None:
    row = materialized_row({**ROW, **STALE}, agent="ms_agent", task_index=4, rollout_index=1)
    assert row == {**ROW, "_ng_task_index": 4, "_ng_rollout_index": 1, "agent_ref": REF}
    assert list(row) == [*ROW, "_ng_task_index", "_ng_rollout_index"]  # NeMo Gym's order


def test_materialized_row_names_the_default_agent() -> None:
    bare = {"responses_create_params": PARAMS}
    row = materialized_row(bare, agent="a", task_index=0, rollout_index=0)
    assert row["agent_ref"] == {"name": "a"}
    assert list(row) == [
        "responses_create_params",
        "agent_ref",
        "_ng_task_index",
        "_ng_rollout_index",
    ]


def test_written_rows_give_back_their_rollout_id_and_agent() -> None:
    for row in (output_row(make_result(), make_task()), failure_row(make_failure())):
        assert agent_of(row) == "ms_agent"
        assert row_rollout_id("r", row) == "r/ms_agent/4/1"
    assert agent_of({"agent_ref": "not an object"}) == ""


def test_resume_republishes_a_failed_rollout_with_its_original_row(tmp_path: Path) -> None:
    """Failures file -> resume plan: the retried task's row is the row first published."""
    paths = OutputPaths(tmp_path / "out.jsonl")
    paths.failures.write_bytes(ENCODER.encode(failure_row(make_failure())) + b"\n")
    plan = plan_resume(paths, "r", max_attempts=3)
    assert plan.retry["r/ms_agent/4/1"].row == ROW


def test_nemo_gym_fields_give_back_nemo_gyms_row() -> None:
    """Without the task fields gymstream kept and its _gs_ keys: what metrics are computed over."""
    row = output_row({**make_result(), "_gs_token_prefix_breaks": 0}, make_task())
    theirs = nemo_gym_fields(row)
    assert "id" not in theirs
    assert "expected_synonym_values" not in theirs
    assert not [k for k in theirs if k.startswith("_gs_")]
    assert theirs["accuracy"] is True  # the verifier's own fields stay
    assert list(theirs)[-3:] == ["_ng_task_index", "_ng_rollout_index", "agent_ref"]


def test_a_verifier_that_echoes_a_task_field_keeps_it() -> None:
    """A field the verifier answered (NeMo Gym's declared request fields) is NeMo Gym's too."""
    result = make_result(fields={**FIELDS, "id": 3})
    assert result["_gs_task_fields"] == ["expected_synonym_values"]
    assert nemo_gym_fields(result)["id"] == 3


def test_an_earlier_outputs_gs_keys_are_not_task_fields() -> None:
    earlier = {**ROW, "_gs_task_fields": ["x"], "_gs_token_prefix_breaks": 2}
    result = make_result(earlier)
    assert result["_gs_task_fields"] == ["id", "expected_synonym_values"]
    assert "_gs_token_prefix_breaks" not in result


def test_the_environment_server_is_stamped_last_as_nemo_gym_does() -> None:
    fronting = EnvironmentServer("ms_env", "legacy_agent")
    row = output_row(make_result(), make_task(attempt=1), fronting)
    assert list(row)[-3:] == ["_ng_attempt_index", "_ng_environment_server", "_ng_result_type"]
    assert (row["_ng_environment_server"], row["_ng_result_type"]) == ("ms_env", "legacy_agent")
    assert "_ng_environment_server" not in output_row(make_result(), make_task())
