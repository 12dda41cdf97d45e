"""The pure core of a trainer stream: messages in, units handed out, acknowledged, accounted.

No Kafka (``stream.py`` reads and writes it). A ``Delivery`` takes the run's results and
failures as read (``take``: decode, assemble into units, drop or hold each finished unit), hands
held units out (``pop``: mixed by weight, a unit gone stale meanwhile dropped), acknowledges them
(``acknowledge``), and knows the stream's position and whether every expected unit of the run is
accounted for (``finished``). Every drop closes the unit and is counted in ``stats``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import msgspec

from gymstream.errors import ConfigError
from gymstream.trainer.grouping import TP, Assembler, ClosedSet, Group, UnitKey, expected_units
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.position import check_resumable, make_position
from gymstream.trainer.selection import Mixer, StreamStats, drop_reason, is_stale
from gymstream.wire.codec import DECODE_FAILURE, DECODE_RESULT
from gymstream.wire.keys import group_key_prefix
from gymstream.wire.records import RunManifest, StreamProgress

__all__ = ["Delivery"]

log = logging.getLogger("gymstream.trainer.delivery")


class Delivery:
    """What one stream of ``options`` holds, has handed out and has closed (see the module doc).

    ``results_topic`` and ``failures_topic`` name the topics ``take`` is fed from (the position
    keeps offsets per partition of each).
    """

    def __init__(self, options: StreamOptions, *, results_topic: str, failures_topic: str) -> None:
        self.options = options
        self.results_topic = results_topic
        self.failures_topic = failures_topic
        self.stats = StreamStats()
        self.policy_version = options.policy_version
        self.assembler = Assembler(
            options.run_id, options.group_size, per_rollout=options.unit == "rollout"
        )
        # messages read before the manifest told their group size, replayed when it does
        self._waiting: list[tuple[TP, int, bytes | None, bytes | None]] = []
        self._sized = options.unit == "rollout" or options.group_size is not None
        self.mixer = Mixer(options.weights, options.max_held)
        self.handed: dict[UnitKey, Group] = {}
        self.expected: dict[str, int] | None = None
        self._acknowledged_before = 0
        self._key_prefix = group_key_prefix(options.run_id)

    def restore(self, position: StreamProgress) -> None:
        """Resume from a saved position (ConfigError if it was made with other options)."""
        check_resumable(position, self.options)
        self.assembler.closed = ClosedSet.from_wire(position.closed)
        self._acknowledged_before = position.acknowledged_units
        if self.policy_version is None:
            self.policy_version = position.policy_version

    def take_manifest(self, manifest: RunManifest) -> None:
        """The run's manifest: the group sizes (unless ``group_size`` overrides them), and, once
        it says ``produced``, the expected units. ConfigError if a group size is needed and the
        manifest records none (written by an older producer)."""
        assembler = self.assembler
        if assembler.group_size is None and not assembler.per_rollout:
            if not manifest.repeats:
                raise ConfigError(
                    f"the manifest of run {manifest.run_id} records no repeats (an older "
                    "producer wrote it): give the group size (group_size / --group-size)"
                )
            assembler.sizes = manifest.repeats
            self._sized = True
        if manifest.state == "produced":
            self.expected = expected_units(manifest.expected, assembler.unit_size)
        waiting, self._waiting = self._waiting, []
        for message in waiting:
            self.take(*message)

    # --- intake ----------------------------------------------------------------------------
    def take(self, tp: TP, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One message read from ``tp`` (results or failures), in offset order per partition.

        Until the manifest gives the group sizes, messages of the run wait (in order), so that
        the watermarks never pass them."""
        if self._waiting or (not self._sized and self._is_ours(key)):
            self._waiting.append((tp, offset, key, value))
            return
        finished = self._assemble(tp, offset, key, value)
        if finished is not None:
            self._admit(finished)
        counts = self.assembler.counts
        self.stats.duplicates, self.stats.closed_skipped = counts.duplicates, counts.closed_skipped

    def _is_ours(self, key: bytes | None) -> bool:
        return key is not None and key.startswith(self._key_prefix)

    def _assemble(
        self, tp: TP, offset: int, key: bytes | None, value: bytes | None
    ) -> Group | None:
        if not value or not self._is_ours(key):
            self.assembler.seek(tp, offset + 1)  # another run's (the key is run/agent/task)
            return None
        try:
            if tp[0] == self.results_topic:
                return self.assembler.add_result(tp, offset, DECODE_RESULT.decode(value))
            return self.assembler.add_failure(tp, offset, DECODE_FAILURE.decode(value))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("skipping undecodable message at %s/%d/%d: %s", *tp, offset, exc)
            self.stats.dropped["undecodable"] += 1
            self.assembler.seek(tp, offset + 1)
            return None

    def _admit(self, group: Group) -> None:
        """A unit just finished: drop it (and say why) or hold it for the trainer."""
        reason = drop_reason(group, self.options, self.mixer, self.policy_version)
        if reason is None:
            self.mixer.push(group)
        else:
            self._drop(group, reason)

    def _drop(self, group: Group, reason: str) -> None:
        self.assembler.close(group.key)
        self.stats.record_drop(group, reason)

    # --- hand-out and acknowledgement -------------------------------------------------------
    def pop(self) -> Group | None:
        """The next unit to hand out, now handed; None while none is ready."""
        while True:
            group = self.mixer.pop(flush=self._all_accounted(), exhausted=self._exhausted())
            if group is None:
                return None
            if is_stale(group, self.options, self.policy_version):
                self._drop(group, "stale")
                continue
            self.mixer.served(group.agent)
            self.handed[group.key] = group
            self.stats.record_delivery(group, self.policy_version)
            return group

    def acknowledge(self, units: Iterable[Group] | None = None) -> int:
        """Close the handed ``units`` (default: all); how many. ValueError for one not handed
        (then none is closed)."""
        keys = list(self.handed) if units is None else [u.key for u in units]
        for key in keys:
            if key not in self.handed:
                raise ValueError(f"unit {key} is not handed and unacknowledged")
        for key in keys:
            del self.handed[key]
            self.assembler.close(key)
        self.stats.acknowledged += len(keys)
        return len(keys)

    def position(self) -> StreamProgress:
        """Where a stream reopened now would resume: every unit not closed comes again."""
        return make_position(
            self.options,
            watermarks=self.assembler.watermarks(),
            closed=self.assembler.closed,
            results_topic=self.results_topic,
            failures_topic=self.failures_topic,
            acknowledged_units=self._acknowledged_before + self.stats.acknowledged,
            policy_version=self.policy_version,
        )

    # --- accounting against the manifest ----------------------------------------------------
    @property
    def finished(self) -> bool:
        """True when every expected unit of the run is handed, acknowledged or dropped."""
        return not len(self.mixer) and self._all_accounted(with_held=False)

    def _accounted(self, agent: str, *, with_held: bool) -> int:
        n = self.assembler.closed.count(agent)
        n += sum(1 for key in self.handed if key.agent == agent)
        return n + (self.mixer.held(agent) if with_held else 0)

    def _all_accounted(self, *, with_held: bool = True) -> bool:
        if self.expected is None:
            return False
        return all(
            self._accounted(agent, with_held=with_held) >= units
            for agent, units in self.expected.items()
        )

    def _exhausted(self) -> set[str]:
        """Agents that will get no more units (all their expected units are in sight)."""
        if self.expected is None:
            return set()
        absent = {a for a in self.options.weights or {} if a not in self.expected}
        return absent | {
            agent
            for agent, units in self.expected.items()
            if self._accounted(agent, with_held=True) >= units
        }
