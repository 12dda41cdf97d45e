"""gymstream: collect RL rollouts for LLMs over Apache Kafka, NeMo Gym compatible.

The public API is what a trainer or a script imports: the names in ``__all__``, importable from
``gymstream`` itself (``from gymstream import open_stream``). Everything else may change without
notice. (``collect`` is not a public name: ``gymstream.collect`` is the module of that name.)
Importing ``gymstream`` has no side effects and stays cheap: each name is imported from its
module on first use (PEP 562), so a worker process does not pay for the trainer's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gymstream.client.outcome import RolloutFailedError
    from gymstream.client.run import RolloutClient
    from gymstream.client.sync import SyncRolloutClient
    from gymstream.collect import CollectReport
    from gymstream.errors import GymstreamError, TrajectoryError
    from gymstream.kafka.topics import TopicLayout, load_layout
    from gymstream.nemo_gym.outputs.files import OutputPaths
    from gymstream.produce.plan import ProduceOptions
    from gymstream.runs.policy import latest_policy_version, publish_policy_version
    from gymstream.runs.tail import read_manifests
    from gymstream.settings import KafkaSettings, RolloutSettings, TopicSettings
    from gymstream.trainer.grouping import Group
    from gymstream.trainer.options import StreamOptions
    from gymstream.trainer.stream import GroupStream, groups, open_stream, rollouts
    from gymstream.trainer.sync import SyncStream
    from gymstream.trainer.tokens import TokenTrajectory, group_trajectories, token_trajectory
    from gymstream.wire.messages import FailureClass, FailureMessage, ResultMessage
    from gymstream.wire.records import RunManifest

__all__ = [
    "CollectReport",
    "FailureClass",
    "FailureMessage",
    "Group",
    "GroupStream",
    "GymstreamError",
    "KafkaSettings",
    "OutputPaths",
    "ProduceOptions",
    "ResultMessage",
    "RolloutClient",
    "RolloutFailedError",
    "RolloutSettings",
    "RunManifest",
    "StreamOptions",
    "SyncRolloutClient",
    "SyncStream",
    "TokenTrajectory",
    "TopicLayout",
    "TopicSettings",
    "TrajectoryError",
    "group_trajectories",
    "groups",
    "latest_policy_version",
    "load_layout",
    "open_stream",
    "publish_policy_version",
    "read_manifests",
    "rollouts",
    "token_trajectory",
]

_HOME = {
    "RolloutFailedError": "gymstream.client.outcome",
    "RolloutClient": "gymstream.client.run",
    "SyncRolloutClient": "gymstream.client.sync",
    "CollectReport": "gymstream.collect",
    "GymstreamError": "gymstream.errors",
    "TrajectoryError": "gymstream.errors",
    "TopicLayout": "gymstream.kafka.topics",
    "load_layout": "gymstream.kafka.topics",
    "OutputPaths": "gymstream.nemo_gym.outputs.files",
    "ProduceOptions": "gymstream.produce.plan",
    "latest_policy_version": "gymstream.runs.policy",
    "publish_policy_version": "gymstream.runs.policy",
    "read_manifests": "gymstream.runs.tail",
    "KafkaSettings": "gymstream.settings",
    "RolloutSettings": "gymstream.settings",
    "TopicSettings": "gymstream.settings",
    "Group": "gymstream.trainer.grouping",
    "StreamOptions": "gymstream.trainer.options",
    "GroupStream": "gymstream.trainer.stream",
    "groups": "gymstream.trainer.stream",
    "open_stream": "gymstream.trainer.stream",
    "rollouts": "gymstream.trainer.stream",
    "SyncStream": "gymstream.trainer.sync",
    "TokenTrajectory": "gymstream.trainer.tokens",
    "group_trajectories": "gymstream.trainer.tokens",
    "token_trajectory": "gymstream.trainer.tokens",
    "FailureClass": "gymstream.wire.messages",
    "FailureMessage": "gymstream.wire.messages",
    "ResultMessage": "gymstream.wire.messages",
    "RunManifest": "gymstream.wire.records",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (then it is a plain attribute)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'gymstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
