"""Every identity and record key of the system, made here and nowhere else.

- rollout id ``<run>/<agent>/<task index>/<rollout index>``: unique in the run, stable across
  retries and restarts (tasks are keyed by it: work spreads over partitions);
- result and failure key ``<run>/<agent>/<task index>``: every rollout of a GRPO group lands in
  one partition;
- a poison message (no rollout id of its own) ``poison:<topic>/<partition>/<offset>``;
- runs-topic keys: the manifest under the bare run id, the trainer's policy version under
  ``control/<run>``, a trainer stream's position under ``progress/<run>/<consumer>``, the sink's
  counts under ``sink/<run>``, a worker's model outage under ``outage/<namespace>/<agent>/<worker>``
  (a tombstone when it ends).
"""

from __future__ import annotations

__all__ = [
    "CONTROL_PREFIX",
    "OUTAGE_PREFIX",
    "PROGRESS_PREFIX",
    "SINK_PREFIX",
    "agent_of",
    "group_key",
    "group_key_prefix",
    "location",
    "manifest_key",
    "model_outage_key",
    "poison_id",
    "policy_version_key",
    "progress_key",
    "progress_run_prefix",
    "rollout_id",
    "sink_progress_key",
    "task_key",
]

CONTROL_PREFIX = b"control/"
PROGRESS_PREFIX = b"progress/"
SINK_PREFIX = b"sink/"
OUTAGE_PREFIX = b"outage/"


def rollout_id(run_id: str, agent: str, task_index: int, rollout_index: int) -> str:
    """The rollout's identity, unique in the run and stable across retries and restarts."""
    return f"{run_id}/{agent}/{task_index}/{rollout_index}"


def task_key(run_id: str, agent: str, task_index: int) -> str:
    """The identity of a task (a GRPO group: all its rollouts)."""
    return f"{run_id}/{agent}/{task_index}"


def group_key(run_id: str, agent: str, task_index: int) -> bytes:
    """The Kafka key of a task's results and failures: its whole group meets in one partition."""
    return task_key(run_id, agent, task_index).encode()


def group_key_prefix(run_id: str) -> bytes:
    """What every result and failure key of the run starts with (``group_key``'s run part)."""
    return f"{run_id}/".encode()


def location(topic: str, partition: int, offset: int) -> str:
    """Where a message was read, as failure records and logs name it: ``<topic>/<p>/<offset>``."""
    return f"{topic}/{partition}/{offset}"


def poison_id(topic: str, partition: int, offset: int) -> str:
    """The id of a task message that could not be read as a task (it has no rollout id)."""
    return f"poison:{location(topic, partition, offset)}"


def manifest_key(run_id: str) -> bytes:
    """The runs-topic key of a run's manifest: the bare run id."""
    return run_id.encode()


def policy_version_key(run_id: str) -> bytes:
    """The runs-topic key of the trainer's current policy version for a run."""
    return CONTROL_PREFIX + run_id.encode()


def progress_key(run_id: str, consumer: str) -> bytes:
    """The runs-topic key of one trainer stream's position and progress."""
    return PROGRESS_PREFIX + f"{run_id}/{consumer}".encode()


def progress_run_prefix(run_id: str) -> bytes:
    """What the runs-topic keys of every trainer stream position of the run start with."""
    return PROGRESS_PREFIX + f"{run_id}/".encode()


def sink_progress_key(run_id: str) -> bytes:
    """The runs-topic key of the counts a run's sink has written (``SinkProgress``)."""
    return SINK_PREFIX + run_id.encode()


def model_outage_key(namespace: str, agent: str, worker: str) -> bytes:
    """The runs-topic key of one worker's model outage (``ModelOutageRecord``)."""
    return OUTAGE_PREFIX + f"{namespace}/{agent}/{worker}".encode()


def agent_of(run_id: str, rollout: str) -> str:
    """The agent part of a rollout id of ``run_id`` (``rollout_id``'s inverse, for the agent)."""
    return rollout.removeprefix(f"{run_id}/").rsplit("/", 2)[0]
