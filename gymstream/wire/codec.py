"""The shared JSON encoder and one decoder per wire struct, built once at import."""

from __future__ import annotations

import msgspec

from gymstream.wire.messages import FailureMessage, ResultMessage, TaskMessage
from gymstream.wire.records import (
    ModelOutageRecord,
    PolicyVersion,
    RunManifest,
    SinkProgress,
    StreamProgress,
)

__all__ = [
    "DECODE_FAILURE",
    "DECODE_MANIFEST",
    "DECODE_MODEL_OUTAGE",
    "DECODE_POLICY_VERSION",
    "DECODE_PROGRESS",
    "DECODE_RESULT",
    "DECODE_SINK_PROGRESS",
    "DECODE_TASK",
    "ENCODER",
]

ENCODER = msgspec.json.Encoder()
DECODE_TASK = msgspec.json.Decoder(TaskMessage)
DECODE_RESULT = msgspec.json.Decoder(ResultMessage)
DECODE_FAILURE = msgspec.json.Decoder(FailureMessage)
DECODE_MANIFEST = msgspec.json.Decoder(RunManifest)
DECODE_POLICY_VERSION = msgspec.json.Decoder(PolicyVersion)
DECODE_PROGRESS = msgspec.json.Decoder(StreamProgress)
DECODE_SINK_PROGRESS = msgspec.json.Decoder(SinkProgress)
DECODE_MODEL_OUTAGE = msgspec.json.Decoder(ModelOutageRecord)
