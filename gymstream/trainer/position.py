"""A trainer stream's position: the ``StreamProgress`` record, and writing it when it changed.

The record (see ``stream.py`` for why one record on the runs topic) holds, per partition of the
results and failures topics, the offset to read again from, the closed units, and the counts a
``Pacer`` reads. ``check_resumable`` refuses a saved position made with other options;
``PositionWriter`` writes a position only when it differs from the last one written or restored.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec

from gymstream.errors import ConfigError
from gymstream.trainer.grouping import TP, ClosedSet
from gymstream.trainer.options import StreamOptions
from gymstream.wire.codec import DECODE_PROGRESS, ENCODER
from gymstream.wire.records import StreamProgress

__all__ = [
    "PositionWriter",
    "check_resumable",
    "dump_position",
    "load_position",
    "make_position",
]


def dump_position(position: StreamProgress) -> bytes:
    """A position as bytes, for a trainer's checkpoint."""
    return ENCODER.encode(position)


def load_position(data: bytes) -> StreamProgress:
    return DECODE_PROGRESS.decode(data)


def make_position(
    options: StreamOptions,
    *,
    watermarks: dict[TP, int],
    closed: ClosedSet,
    results_topic: str,
    failures_topic: str,
    acknowledged_units: int,
    policy_version: int | None,
) -> StreamProgress:
    """The record of a stream of ``options`` at these watermarks, closed set and counts."""
    return StreamProgress(
        run_id=options.run_id,
        consumer=options.consumer,
        unit=options.unit,
        group_size=options.unit_size,
        results={p: o for (t, p), o in watermarks.items() if t == results_topic},
        failures={p: o for (t, p), o in watermarks.items() if t == failures_topic},
        closed=closed.to_wire(),
        closed_units=closed.count(),
        acknowledged_units=acknowledged_units,
        policy_version=policy_version,
    )


def check_resumable(position: StreamProgress, options: StreamOptions) -> None:
    """ConfigError unless a stream of ``options`` may resume from ``position``."""
    o = options
    if (position.run_id, position.unit, position.group_size) != (o.run_id, o.unit, o.unit_size):
        raise ConfigError(
            f"the saved position of consumer '{position.consumer}' is for run "
            f"{position.run_id}, unit {position.unit}, {_size(position.group_size)}; "
            f"this stream asks for run {o.run_id}, unit {o.unit}, {_size(o.unit_size)}: "
            "use the same options, another --consumer name, or --from-beginning"
        )


def _size(unit_size: int) -> str:
    return f"group size {unit_size}" if unit_size else "group sizes from the manifest"


class PositionWriter:
    """Writes a position (stamped with ``updated_ms``) through ``send`` when it changed.

    ``send`` gets the encoded record and returns once it is durable (the stream sends it to the
    runs topic under ``progress/<run>/<consumer>``). A failed send leaves the last written
    position as it was, so the next ``save`` tries again.
    """

    def __init__(self, send: Callable[[bytes], Awaitable[object]]) -> None:
        self._send = send
        self._saved = b""

    def restored(self, position: StreamProgress) -> None:
        """The stream resumed from ``position``: it counts as written."""
        self._saved = ENCODER.encode(position)

    async def save(self, position: StreamProgress) -> bool:
        """Write ``position`` unless it is the one last written; True when it was written."""
        encoded = ENCODER.encode(position)
        if encoded == self._saved:
            return False
        stamped = msgspec.structs.replace(position, updated_ms=int(time.time() * 1000))
        await self._send(ENCODER.encode(stamped))
        self._saved = encoded
        return True
