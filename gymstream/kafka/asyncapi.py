"""The AsyncAPI 3.0 document of every topic and message gymstream produces and consumes.

Generated from the code, so it cannot drift: channels and their Kafka settings from the topic
layout (``topics.yaml``), payload schemas from the msgspec structs of ``gymstream.wire``
(``msgspec.json.schema_components``: exactly what the codec encodes and decodes), keys as
``gymstream.wire.keys`` makes them. ``docs/asyncapi.yaml`` is this document;
``gymstream topics asyncapi`` prints it and a test keeps the two equal. A trainer in any
language reads its contract from there.

(FastStream was the first candidate for this and was dropped: it builds payload schemas from
pydantic models only, and a handler typed with a msgspec Struct fails when its document is
generated.)
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
import yaml

from gymstream.kafka.topics import TopicLayout, TopicSpec, load_layout
from gymstream.wire.messages import FailureMessage, ResultMessage, TaskMessage
from gymstream.wire.records import (
    ModelOutageRecord,
    PolicyVersion,
    RunManifest,
    SinkProgress,
    StreamProgress,
)

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document", "asyncapi_yaml"]

ASYNCAPI_VERSION = "3.0.0"
_BINDING = "0.5.0"  # AsyncAPI Kafka bindings
_STRUCTS: tuple[type[msgspec.Struct], ...] = (
    TaskMessage,
    ResultMessage,
    FailureMessage,
    RunManifest,
    PolicyVersion,
    StreamProgress,
    SinkProgress,
    ModelOutageRecord,
)
# message name -> (struct, Kafka key as gymstream.wire.keys makes it, summary)
_MESSAGES: dict[str, tuple[type[msgspec.Struct], str, str]] = {
    "task": (
        TaskMessage,
        "rollout id `<run>/<agent>/<task index>/<rollout index>` (wire.keys.rollout_id)",
        "One rollout to run; `row` is the user's NeMo Gym row, whole.",
    ),
    "result": (
        ResultMessage,
        "`<run>/<agent>/<task index>` (wire.keys.group_key): a GRPO group meets in one partition",
        "A scored rollout; `output` is the NeMo Gym output row.",
    ),
    "failure": (
        FailureMessage,
        "`<run>/<agent>/<task index>` (wire.keys.group_key), as results",
        "A typed failure (the dead-letter topic); never a reward of 0.",
    ),
    "runManifest": (
        RunManifest,
        "the bare run id (wire.keys.manifest_key)",
        "A run's manifest: producing, then produced with the expected counts per agent.",
    ),
    "policyVersion": (
        PolicyVersion,
        "`control/<run>` (wire.keys.policy_version_key)",
        "The trainer's current policy version for a run.",
    ),
    "streamProgress": (
        StreamProgress,
        "`progress/<run>/<consumer>` (wire.keys.progress_key)",
        "A trainer stream's committed position and progress.",
    ),
    "sinkProgress": (
        SinkProgress,
        "`sink/<run>` (wire.keys.sink_progress_key)",
        "What a run's sink has written and failed, per agent (read by gymstream status).",
    ),
    "modelOutage": (
        ModelOutageRecord,
        "`outage/<namespace>/<agent>/<host:pid>` (wire.keys.model_outage_key); a tombstone "
        "when the outage ends",
        "A worker's model is down and its intake paused (read by gymstream status).",
    ),
}
# channel -> (address, messages, description)
_CHANNELS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "tasks": (
        "{prefix}.tasks.{agent}",
        ("task",),
        "One topic per agent; tasks spread round-robin over the partitions. The shared "
        "namespace's; another namespace's (a collect's private one, or --namespace NAME) is "
        "{prefix}.scope.{namespace}.tasks.{agent} (docs/scopes.md).",
    ),
    "results": ("{prefix}.results", ("result",), "Scored rollouts of every run and agent."),
    "failures": ("{prefix}.failures", ("failure",), "Typed failures: the dead-letter topic."),
    "runs": (
        "{prefix}.runs",
        ("runManifest", "policyVersion", "streamProgress", "sinkProgress", "modelOutage"),
        "Compacted: the latest manifest, policy version, stream and sink progress, and the "
        "workers' model outages, per key.",
    ),
}
# operation -> (action, channel, messages, who)
_OPERATIONS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "publishTasks": ("send", "tasks", ("task",), "gymstream produce / collect / retry-failures"),
    "runTasks": ("receive", "tasks", ("task",), "gymstream worker (group <prefix>-worker-<agent>)"),
    "publishResults": ("send", "results", ("result",), "gymstream worker"),
    "readResults": ("receive", "results", ("result",), "gymstream sink, stream, trainer API"),
    "publishFailures": ("send", "failures", ("failure",), "gymstream worker"),
    "readFailures": ("receive", "failures", ("failure",), "gymstream sink, stream, retry-failures"),
    "publishManifests": ("send", "runs", ("runManifest",), "gymstream produce / collect"),
    "publishPolicyVersions": ("send", "runs", ("policyVersion",), "a trainer (runs.policy)"),
    "publishProgress": ("send", "runs", ("streamProgress",), "a trainer stream (trainer API)"),
    "publishSinkProgress": ("send", "runs", ("sinkProgress",), "gymstream sink / collect"),
    "publishModelOutages": ("send", "runs", ("modelOutage",), "gymstream worker / collect"),
    "readRuns": (
        "receive",
        "runs",
        ("runManifest", "policyVersion", "streamProgress", "sinkProgress", "modelOutage"),
        "sink, stream, workers (policy version), produce (pacing), status",
    ),
}


def _schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        _STRUCTS, ref_template="#/components/schemas/{name}"
    )
    for schema in components.values():
        if "description" in schema:
            schema["description"] = inspect.cleandoc(schema["description"])
    output = components["ResultMessage"]["properties"]["output"]
    output.update(
        type="object",
        description="The NeMo Gym output row (gymstream.nemo_gym.outputs.output_row), as "
        "written to the output JSONL: the input row's keys, `response`, `reward` and the "
        "`_ng_*` keys.",
    )
    return dict(sorted(components.items()))


def _channel_binding(spec: TopicSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        "cleanup.policy": [spec.configs["cleanup.policy"]],
        "retention.ms": int(spec.configs["retention.ms"]),
        "max.message.bytes": int(spec.configs["max.message.bytes"]),
    }
    return {
        "kafka": {
            "partitions": spec.partitions,
            "topicConfiguration": config,
            "bindingVersion": _BINDING,
        }
    }


def asyncapi_document(version: str, layout: TopicLayout | None = None) -> dict[str, Any]:
    """The whole document for gymstream ``version`` and the packaged (or given) topic layout."""
    layout = layout or load_layout()
    results, failures, runs, tasks = layout.specs(["agent"], brokers=3)
    specs = {"tasks": tasks, "results": results, "failures": failures, "runs": runs}
    parameters = {
        "prefix": {
            "description": "Topic prefix: --topic-prefix / GYMSTREAM_TOPIC_PREFIX.",
            "default": "gymstream",
        },
        "agent": {"description": "Agent name, characters outside [A-Za-z0-9._-] as `_`."},
    }
    channels: dict[str, Any] = {}
    for name, (address, names, description) in _CHANNELS.items():
        used = [p for p in parameters if "{" + p + "}" in address]
        channels[name] = {
            "address": address,
            "description": description,
            "parameters": {p: dict(parameters[p]) for p in used},  # no YAML aliases
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in names},
            "bindings": _channel_binding(specs[name]),
        }
    operations = {
        name: {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": who,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in names],
        }
        for name, (action, channel, names, who) in _OPERATIONS.items()
    }
    messages = {
        name: {
            "name": name,
            "title": struct.__name__,
            "summary": summary,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{struct.__name__}"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": key},
                    "bindingVersion": _BINDING,
                }
            },
        }
        for name, (struct, key, summary) in _MESSAGES.items()
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "gymstream",
            "version": version,
            "description": "Topics and messages of gymstream (RL rollouts over Kafka, NeMo Gym "
            "compatible). Values are JSON (msgspec); every new field has a default, so older "
            "messages still decode; a field never changes type. Producers compress with zstd "
            "by default (GYMSTREAM_KAFKA_COMPRESSION): consumers need zstd support.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "Any Kafka 3.x/4.x cluster: GYMSTREAM_KAFKA_BOOTSTRAP.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _schemas()},
    }


def asyncapi_yaml(document: dict[str, Any]) -> str:
    """The document as YAML, keys in the document's order (what docs/asyncapi.yaml holds)."""
    header = "# Generated by `gymstream topics asyncapi -o docs/asyncapi.yaml`: do not edit.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
