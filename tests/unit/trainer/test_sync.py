"""The synchronous stream's own rules (its Kafka behaviour is in tests/integration)."""

from __future__ import annotations

import pytest

from gymstream.kafka.topics import load_layout
from gymstream.settings import KafkaSettings
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.sync import SyncStream

KAFKA = KafkaSettings(bootstrap="127.0.0.1:1")  # never reached: both refusals come first


async def test_a_sync_stream_refuses_to_run_inside_an_event_loop() -> None:
    stream = SyncStream(KAFKA, load_layout(prefix="p"), StreamOptions(run_id="r"))
    with pytest.raises(RuntimeError, match="use open_stream there"):
        stream.__enter__()


def test_a_batch_holds_at_least_one_unit() -> None:
    with pytest.raises(ValueError, match="at least 1, not 0"):
        SyncStream(KAFKA, load_layout(prefix="p"), StreamOptions(run_id="r"), batch_size=0)
