"""One trainer stream over several runs: a ``Delivery`` per run, fed from one reader.

Pure (no Kafka), used by ``stream.py``. Each run keeps everything a single-run stream keeps
(whole groups, its own position record ``progress/<run>/<consumer>``, its own closed set and
watermarks), so resuming is exact per run. One consumer reads the results and failures topics
for all of them, from the lowest offset any run must read again (``start_offset``); each run
ignores what lies below its own saved offset and treats other runs' messages as it always has
(they only move its watermark). Units are handed out run by run, in the order the runs were
given (for runs chosen by prefix: oldest manifest first), so an earlier epoch drains first.
One trainer, one policy version: setting it sets it for every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gymstream.trainer.delivery import Delivery
from gymstream.trainer.grouping import TP, Group
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.selection import StreamStats
from gymstream.wire.records import RunManifest, StreamProgress

__all__ = ["RunSet"]


class RunSet:
    """The deliveries of the runs ``run_ids`` of a stream of ``options`` (see the module doc)."""

    def __init__(
        self,
        options: StreamOptions,
        run_ids: Iterable[str],
        *,
        results_topic: str,
        failures_topic: str,
    ) -> None:
        self.runs: dict[str, Delivery] = {
            run_id: Delivery(
                options.for_run(run_id), results_topic=results_topic, failures_topic=failures_topic
            )
            for run_id in run_ids
        }
        if not self.runs:
            raise ValueError("a stream needs at least one run")
        self._read_from: dict[str, dict[TP, int]] = {run_id: {} for run_id in self.runs}

    # --- where to read from ----------------------------------------------------------------
    def restore(self, positions: Mapping[str, StreamProgress]) -> None:
        """Resume each run that has a saved position; the stream's version is the newest one."""
        for run_id, position in positions.items():
            self.runs[run_id].restore(position)
        versions = [d.policy_version for d in self.runs.values() if d.policy_version is not None]
        if versions:
            self.policy_version = max(versions)

    def start_offset(self, tp: TP, saved: Mapping[str, int | None]) -> int | None:
        """Where the reader starts on ``tp``, given each run's saved offset there (None: read
        it from the beginning); each run then ignores what lies below its own offset."""
        for run_id, offset in saved.items():
            if offset is not None:
                self._read_from[run_id][tp] = offset
                self.runs[run_id].assembler.seek(tp, offset)
        offsets = [saved.get(run_id) for run_id in self.runs]
        known = [o for o in offsets if o is not None]
        return min(known) if known and len(known) == len(offsets) else None

    # --- intake -----------------------------------------------------------------------------
    def take(self, tp: TP, offset: int, key: bytes | None, value: bytes | None) -> None:
        for run_id, delivery in self.runs.items():
            if offset >= self._read_from[run_id].get(tp, 0):
                delivery.take(tp, offset, key, value)

    def take_manifest(self, manifest: RunManifest) -> None:
        delivery = self.runs.get(manifest.run_id)
        if delivery is not None:
            delivery.take_manifest(manifest)

    # --- hand-out and acknowledgement -------------------------------------------------------
    def pop(self) -> Group | None:
        for delivery in self.runs.values():
            group = delivery.pop()
            if group is not None:
                return group
        return None

    def acknowledge(self, units: Iterable[Group] | None = None) -> int:
        """Close the handed ``units`` (default: all) of every run; how many. ValueError for a
        unit not handed (then none is closed)."""
        if units is None:
            return sum(d.acknowledge() for d in self.runs.values())
        by_run: dict[str, list[Group]] = {}
        for unit in units:
            delivery = self.runs.get(unit.run_id)
            if delivery is None or unit.key not in delivery.handed:
                raise ValueError(f"unit {unit.id} is not handed and unacknowledged")
            by_run.setdefault(unit.run_id, []).append(unit)
        return sum(self.runs[run_id].acknowledge(group) for run_id, group in by_run.items())

    def positions(self) -> list[StreamProgress]:
        """Every run's position, in run order."""
        return [d.position() for d in self.runs.values()]

    # --- state ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return all(d.finished for d in self.runs.values())

    @property
    def handed(self) -> list[Group]:
        return [g for d in self.runs.values() for g in d.handed.values()]

    @property
    def stats(self) -> StreamStats:
        """The session's counts over every run (one run's own counts when it is the only one)."""
        if len(self.runs) == 1:
            return next(iter(self.runs.values())).stats
        return StreamStats.total(d.stats for d in self.runs.values())

    @property
    def policy_version(self) -> int | None:
        return next(iter(self.runs.values())).policy_version

    @policy_version.setter
    def policy_version(self, version: int | None) -> None:
        for delivery in self.runs.values():
            delivery.policy_version = version
