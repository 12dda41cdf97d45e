"""`gymstream runs`: list the runs of a deployment, cancel one's leftovers, delete one's records.

- ``list_runs``: every run's manifest with its sink's counts: state, counts, age, namespace.
- ``cancel_run``: the run's tasks that still wait are dropped, never run for anyone: its
  private namespace's task topics are deleted and the manifest records the cancel
  (``cancelled_ms``). A run in a named or the shared namespace keeps its tasks there (other
  runs' tasks share those topics): they stay attributed to the cancelled run, never another.
- ``delete_run``: a finished (complete or cancelled) run's records on the runs topic are
  tombstoned (manifest, policy version, sink counts, trainer positions) and its private task
  topics deleted. Its results and failures age out with their topics' retention.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import msgspec

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_producer, client_options
from gymstream.kafka.topics import TopicLayout
from gymstream.runs.scope import drop_private_scope, is_private, run_layout
from gymstream.runs.tail import RunsTail
from gymstream.settings import KafkaSettings
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import (
    manifest_key,
    policy_version_key,
    progress_run_prefix,
    sink_progress_key,
)
from gymstream.wire.records import RunManifest, SinkProgress

__all__ = ["RunRow", "cancel_run", "delete_run", "list_runs", "run_row"]

RunState = Literal["producing", "produced", "complete", "cancelled"]


@dataclass(frozen=True)
class RunRow:
    """One line of ``gymstream runs list``."""

    run_id: str
    state: RunState
    expected: int | None  # None while producing (the total is not known yet)
    written: int
    failed: int
    age_s: float
    namespace: str

    @property
    def finished(self) -> bool:
        """Nothing of the run can still run: complete, or its leftovers cancelled."""
        return self.state in ("complete", "cancelled")


def run_row(manifest: RunManifest, sink: SinkProgress | None, now_ms: int) -> RunRow:
    """A run's line from its manifest and its sink's counts (pure)."""
    written = sum(sink.written.values()) if sink else 0
    failed = sum(sink.failed.values()) if sink else 0
    expected = sum(manifest.expected.values()) if manifest.state == "produced" else None
    state: RunState = manifest.state
    if manifest.cancelled_ms:
        state = "cancelled"
    elif expected is not None and (
        (sink is not None and sink.complete) or written + failed >= expected
    ):
        state = "complete"
    return RunRow(
        run_id=manifest.run_id,
        state=state,
        expected=expected,
        written=written,
        failed=failed,
        age_s=max(0.0, (now_ms - manifest.created_ms) / 1000) if manifest.created_ms else 0.0,
        namespace=manifest.namespace or "shared",
    )


async def _read(kafka: KafkaSettings, layout: TopicLayout, timeout_s: float) -> RunsTail:
    tail = RunsTail(kafka, layout)
    async with tail:
        await tail.read_to_end(timeout_s)
    return tail


async def list_runs(
    kafka: KafkaSettings, layout: TopicLayout, *, timeout_s: float = 30.0
) -> list[RunRow]:
    """Every run on the deployment's runs topic, oldest first."""
    tail = await _read(kafka, layout, timeout_s)
    now_ms = int(time.time() * 1000)
    return [run_row(m, tail.sink_progress(m.run_id), now_ms) for m in tail.manifests()]


async def _find(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, timeout_s: float
) -> tuple[RunsTail, RunManifest]:
    tail = await _read(kafka, layout, timeout_s)
    manifest = tail.manifest(run_id)
    if manifest is None:
        raise ConfigError(
            f"no run {run_id!r} on {layout.runs} (`gymstream runs list` shows the runs there)"
        )
    return tail, manifest


async def cancel_run(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, *, timeout_s: float = 30.0
) -> tuple[RunRow, list[str]]:
    """Cancel ``run_id``: record it and drop its private task topics; (its row, topics deleted).

    Raises ConfigError when there is no such run, it is complete (nothing waits), or a worker
    of its private namespace is live (its collect still runs); then nothing is changed."""
    tail, manifest = await _find(kafka, layout, run_id, timeout_s)
    row = run_row(manifest, tail.sink_progress(run_id), int(time.time() * 1000))
    if row.state == "complete":
        raise ConfigError(f"run {run_id} is complete: nothing waits to be cancelled")
    scoped = run_layout(layout, manifest)
    dropped: list[str] = []
    if is_private(run_id, scoped.namespace):  # first: refused while the run's workers live
        dropped = await drop_private_scope(client_options(kafka), scoped, run_id)
    cancelled = msgspec.structs.replace(manifest, cancelled_ms=int(time.time() * 1000))
    await _publish(kafka, layout, [(manifest_key(run_id), ENCODER.encode(cancelled))])
    now_ms = int(time.time() * 1000)
    return run_row(cancelled, tail.sink_progress(run_id), now_ms), dropped


async def delete_run(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, *, timeout_s: float = 30.0
) -> tuple[int, list[str]]:
    """Delete a finished run's records; (records tombstoned, task topics deleted).

    Raises ConfigError when there is no such run or it is not finished (cancel it first)."""
    tail, manifest = await _find(kafka, layout, run_id, timeout_s)
    row = run_row(manifest, tail.sink_progress(run_id), int(time.time() * 1000))
    if not row.finished:
        raise ConfigError(
            f"run {run_id} is not finished ({row.state}): resume it to completion, or drop "
            f"what waits with `gymstream runs cancel {run_id}` first"
        )
    scoped = run_layout(layout, manifest)
    dropped: list[str] = []
    if is_private(run_id, scoped.namespace):
        dropped = await drop_private_scope(client_options(kafka), scoped, run_id)
    prefix = progress_run_prefix(run_id)
    keys = [manifest_key(run_id), policy_version_key(run_id), sink_progress_key(run_id)]
    keys += [k for k in tail.latest if k.startswith(prefix)]
    held = [k for k in keys if k in tail.latest]
    await _publish(kafka, layout, [(k, None) for k in held])
    return len(held), dropped


async def _publish(
    kafka: KafkaSettings, layout: TopicLayout, records: list[tuple[bytes, bytes | None]]
) -> None:
    """Write records (None: a tombstone) to the runs topic, each acknowledged."""
    producer = build_producer(kafka)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(layout.runs, value, key=key)
    finally:
        await producer.stop()
