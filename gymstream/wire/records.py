"""Records of the compacted runs topic: run manifests, policy versions, trainer and sink progress.

Their keys are made in ``gymstream.wire.keys``; the one reader of the topic is ``gymstream.runs``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "ALL_ROLLOUTS",
    "ClosedRanges",
    "ModelOutageRecord",
    "PolicyVersion",
    "RunManifest",
    "SinkProgress",
    "StreamProgress",
]


class RunManifest(msgspec.Struct, kw_only=True, frozen=True):
    """A run's manifest on the compacted ``gymstream.runs`` topic, keyed by run id.

    A sink or stream knows the run is complete when ``state`` is ``produced`` and every expected
    rollout is accounted for.
    """

    run_id: str
    state: Literal["producing", "produced"]
    expected: dict[str, int] = msgspec.field(default_factory=dict)
    input_path: str = ""
    created_ms: int = 0
    rollout_ids_hash: str = ""
    # rollouts per task (the GRPO group size) per agent, ``"_default"`` for the agents not
    # named, as the producer's num_repeats said; empty in manifests of older producers
    repeats: dict[str, int] = msgspec.field(default_factory=dict)
    # what defines the run (component -> value or short hash: the input's sha256, repeats,
    # seeds, routing, each agent's configuration; ``gymstream.produce.fingerprint``): the same
    # run id with another definition is refused. Empty in manifests of older producers.
    definition: dict[str, str] = msgspec.field(default_factory=dict)
    # whose workers take the run's tasks (docs/scopes.md); "" in manifests of older producers,
    # which only knew the shared names
    namespace: str = ""
    # when `gymstream runs cancel` dropped the run's waiting tasks (ms since the epoch); 0: never
    cancelled_ms: int = 0


ALL_ROLLOUTS = -1  # a ClosedRanges / unit that stands for every rollout of a task (a group)


class ClosedRanges(msgspec.Struct, kw_only=True, frozen=True):
    """Wire form of one agent's (and, in rollout mode, one rollout index's) closed tasks."""

    agent: str
    rollout_index: int = ALL_ROLLOUTS
    tasks: list[int] = msgspec.field(default_factory=list)


class PolicyVersion(msgspec.Struct, kw_only=True, frozen=True):
    """The trainer's policy version for a run (runs topic, key ``control/<run id>``)."""

    run_id: str
    version: int
    updated_ms: int = 0


class StreamProgress(msgspec.Struct, kw_only=True, frozen=True):
    """A trainer stream's committed position and progress (key ``progress/<run>/<consumer>``).

    ``results`` / ``failures``: partition -> offset to read again from (the watermark: no live
    unit has a message below it). ``closed``: the units acknowledged or dropped, as task ranges
    per agent. ``closed_units``: how many (what a ``Pacer`` compares with what was produced).
    """

    run_id: str
    consumer: str
    unit: Literal["group", "rollout"]
    group_size: int
    results: dict[int, int] = msgspec.field(default_factory=dict)
    failures: dict[int, int] = msgspec.field(default_factory=dict)
    closed: list[ClosedRanges] = msgspec.field(default_factory=list)
    closed_units: int = 0
    acknowledged_units: int = 0
    policy_version: int | None = None
    updated_ms: int = 0


class SinkProgress(msgspec.Struct, kw_only=True, frozen=True):
    """What a run's sink has in its output files (runs topic, key ``sink/<run id>``).

    ``written`` / ``failed``: per agent, the rollouts of the run in the output file and in the
    failures file (from before a restart too), as of the sink's last commit: the files are
    fsynced before the sink publishes this. ``complete``: the sink saw the run complete.
    Published by every sink (``sink`` and ``collect``) at most about once a second and when it
    stops; ``gymstream status`` reads it.
    """

    run_id: str
    written: dict[str, int] = msgspec.field(default_factory=dict)
    failed: dict[str, int] = msgspec.field(default_factory=dict)
    duplicates: int = 0
    complete: bool = False
    updated_ms: int = 0
    # results per model that produced them (``wire.keys.model_label``), of those this sink wrote
    # since it started (rows from before a restart do not say their model)
    models: dict[str, int] = msgspec.field(default_factory=dict)


class ModelOutageRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A worker's model that is down (runs topic, key ``outage/<namespace>/<agent>/<worker>``).

    Published by the worker when the outage begins (``worker/outage.py``: intake paused); a
    tombstone under the same key when the model answers again or the worker stops.
    ``gymstream status`` shows it beside the run's agent while the agent's worker group has
    members (a worker killed mid-outage leaves its record, but no member)."""

    agent: str
    worker: str = ""  # host:pid
    namespace: str = ""
    down_since_ms: int = 0  # wall clock, when the first rollout failed as an outage
    budget_s: float = 0.0  # intake stays paused this long, then rollouts fail
