"""docs/asyncapi.yaml is the document the code generates, and real messages match its schemas."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
import yaml
from typer.testing import CliRunner

from gymstream.cli.main import app
from gymstream.kafka.asyncapi import asyncapi_document, asyncapi_yaml
from gymstream.wire import codec
from gymstream.wire.codec import ENCODER
from gymstream.wire.messages import FailureMessage, ResultMessage, TaskMessage
from gymstream.wire.records import (
    ClosedRanges,
    ModelOutageRecord,
    PolicyVersion,
    RunManifest,
    StreamProgress,
)

ROOT = Path(__file__).resolve().parents[3]
DOC = asyncapi_document(metadata.version("gymstream"))


def test_the_checked_in_document_is_the_generated_one() -> None:
    checked_in = (ROOT / "docs" / "asyncapi.yaml").read_text("utf-8")
    assert checked_in == asyncapi_yaml(DOC), (
        "docs/asyncapi.yaml is stale: run `gymstream topics asyncapi -o docs/asyncapi.yaml`"
    )


def test_the_command_prints_the_document() -> None:
    result = CliRunner().invoke(app, ["topics", "asyncapi"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == json.loads(json.dumps(DOC))


def test_every_wire_struct_the_codec_decodes_is_described() -> None:
    decoded = {d.type.__name__ for d in vars(codec).values() if isinstance(d, msgspec.json.Decoder)}
    described = {m["title"] for m in DOC["components"]["messages"].values()}
    assert decoded == described
    for channel in DOC["channels"].values():
        for ref in channel["messages"].values():
            assert ref["$ref"].split("/")[-1] in DOC["components"]["messages"]


def _validate(struct_name: str, value: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{struct_name}", "components": DOC["components"]}
    jsonschema.Draft202012Validator(schema).validate(value)


SAMPLES: list[msgspec.Struct] = [
    TaskMessage(
        run_id="r",
        rollout_id="r/a/0/1",
        agent="a",
        task_index=0,
        rollout_index=1,
        row={"responses_create_params": {"input": "hi"}, "extra": [1, 2]},
        policy_version=3,
    ),
    ResultMessage(
        run_id="r",
        rollout_id="r/a/0/1",
        agent="a",
        task_index=0,
        rollout_index=1,
        output=msgspec.Raw(b'{"reward": 1.0, "response": {}}'),
        reward=1.0,
        timings={"model_s": 0.5},
    ),
    FailureMessage(
        run_id="r",
        rollout_id="r/a/0/1",
        agent="a",
        task_index=0,
        rollout_index=1,
        failure_class="model_timeout",
        failure_type="ModelCallError",
        message="timed out",
        terminal=False,
        http_status=None,
        row={"x": 1},
        topic="t",
        partition=0,
        offset=5,
    ),
    RunManifest(run_id="r", state="produced", expected={"a": 4}),
    PolicyVersion(run_id="r", version=7),
    StreamProgress(
        run_id="r",
        consumer="c",
        unit="group",
        group_size=4,
        results={0: 12},
        closed=[ClosedRanges(agent="a", tasks=[0, 3])],
    ),
    ModelOutageRecord(agent="a", worker="h:1", namespace="ns", down_since_ms=1, budget_s=300.0),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_an_encoded_message_matches_its_schema(message: msgspec.Struct) -> None:
    _validate(type(message).__name__, json.loads(ENCODER.encode(message)))


def test_the_schemas_reject_a_wrong_message() -> None:
    task = json.loads(ENCODER.encode(SAMPLES[0]))
    del task["rollout_id"]
    with pytest.raises(jsonschema.ValidationError, match="rollout_id"):
        _validate("TaskMessage", task)
    manifest = {"run_id": "r", "state": "finished"}
    with pytest.raises(jsonschema.ValidationError, match="finished"):
        _validate("RunManifest", manifest)
