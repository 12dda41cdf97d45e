"""The sink's per-agent counts (SinkProgress) kept from the ids on disk and each batch's rows."""

from __future__ import annotations

from message_helpers import RUN, failure_message, result_message

from gymstream.sink.ledger import SinkLedger, SinkReport
from gymstream.sink.progress import SinkCounts
from gymstream.wire.keys import agent_of, rollout_id


def test_agent_of_inverts_rollout_id() -> None:
    assert agent_of("r/1", rollout_id("r/1", "my_agent", 12, 3)) == "my_agent"


def test_counts_start_from_the_files_and_follow_every_batch() -> None:
    on_disk_written = {rollout_id(RUN, "a", 0, 0), rollout_id(RUN, "b", 0, 0)}
    on_disk_failed = {rollout_id(RUN, "a", 1, 0)}
    ledger = SinkLedger(SinkReport(run_id=RUN), on_disk_written, on_disk_failed)
    counts = SinkCounts(ledger)
    assert (counts.record().written, counts.record().failed) == ({"a": 1, "b": 1}, {"a": 1})

    rows = ledger.take(
        [
            result_message(2, agent="a"),
            failure_message(3, agent="b"),
            result_message(0, agent="a"),  # a duplicate: not counted
            result_message(1, agent="a"),  # supersedes the failure on disk
            result_message(9, agent="a", run="other"),  # another run's
        ]
    )
    counts.superseded(rows.superseded)
    record = counts.record()
    assert record.run_id == RUN
    assert record.written == {"a": 3, "b": 1}
    assert record.failed == {"b": 1}
    assert record.duplicates == 1
    assert not record.complete
    # the counts always agree with the ledger's sets
    assert sum(record.written.values()) == len(ledger.written_ids)
    assert sum(record.failed.values()) == len(ledger.failed_ids)


def test_a_failure_superseded_in_the_same_batch_moves_to_written() -> None:
    ledger = SinkLedger(SinkReport(run_id=RUN))
    counts = SinkCounts(ledger)
    rows = ledger.take([failure_message(0), result_message(0)])
    counts.superseded(rows.superseded)
    assert (counts.record().written, counts.record().failed) == ({"a": 1}, {})
