"""The trainer stream's pure core without a broker: intake, filters, hand-out, acknowledgement."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures.messages import RUN, failure_message, result_message

from gymstream.errors import ConfigError
from gymstream.trainer.delivery import Delivery
from gymstream.trainer.grouping import UnitKey
from gymstream.trainer.options import StreamOptions
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import group_key
from gymstream.wire.records import RunManifest

RESULTS, FAILURES = "t.results", "t.failures"


class Feed:
    """Feeds a Delivery encoded messages, offsets in order per partition."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("group_size", 2)
        self.delivery = Delivery(
            StreamOptions(run_id=RUN, **options),
            results_topic=RESULTS,
            failures_topic=FAILURES,
        )
        self.offsets: dict[tuple[str, int], int] = {}

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> int:
        tp = (topic, 0)
        offset = self.offsets.get(tp, 0)
        self.offsets[tp] = offset + 1
        self.delivery.take(tp, offset, key, value)
        return offset

    def result(self, task: int, rollout: int, *, agent: str = "a", **kwargs: Any) -> int:
        message = result_message(task, rollout, agent=agent, **kwargs)
        return self.send(RESULTS, group_key(RUN, agent, task), ENCODER.encode(message))

    def failure(self, task: int, rollout: int, *, agent: str = "a") -> int:
        message = failure_message(task, rollout, agent=agent)
        return self.send(FAILURES, group_key(RUN, agent, task), ENCODER.encode(message))

    def group(self, task: int, *, agent: str = "a", version: int | None = None) -> None:
        self.result(task, 0, agent=agent, version=version)
        self.result(task, 1, agent=agent, version=version)


def produced(**expected: int) -> RunManifest:
    return RunManifest(run_id=RUN, state="produced", expected=expected)


def test_whole_groups_are_handed_out_and_acknowledged() -> None:
    feed = Feed()
    d = feed.delivery
    feed.result(0, 1)
    assert d.pop() is None  # half a group
    feed.result(0, 0)
    group = d.pop()
    assert group is not None
    assert (group.agent, group.task_index, group.rewards) == ("a", 0, [0.0, 1.0])
    assert list(d.handed) == [UnitKey("a", 0)]
    assert d.pop() is None
    assert d.acknowledge() == 1
    assert d.handed == {}
    assert UnitKey("a", 0) in d.assembler.closed
    assert d.stats.acknowledged == 1
    assert d.stats.delivered == {"a": 1}


def test_acknowledging_a_unit_not_handed_closes_nothing() -> None:
    feed = Feed()
    d = feed.delivery
    feed.group(0)
    feed.group(1)
    first = d.pop()
    second = d.pop()
    assert first is not None
    assert second is not None
    d.acknowledge([second])
    with pytest.raises(ValueError, match="is not handed and unacknowledged"):
        d.acknowledge([first, second])
    assert list(d.handed) == [first.key]
    assert d.stats.acknowledged == 1


def test_other_runs_and_undecodable_messages_only_move_the_watermark() -> None:
    feed = Feed()
    d = feed.delivery
    feed.send(RESULTS, b"r2/a/0", b'{"not": "read"}')
    feed.send(RESULTS, None, b"{}")
    feed.send(RESULTS, group_key(RUN, "a", 1), b"")  # a tombstone
    feed.send(RESULTS, group_key(RUN, "a", 0), b"{broken")
    assert d.stats.dropped == {"undecodable": 1}
    assert d.assembler.watermarks() == {(RESULTS, 0): 4}
    assert d.pop() is None


def test_duplicates_are_counted_in_the_stats() -> None:
    feed = Feed()
    d = feed.delivery
    feed.result(0, 0)
    feed.result(0, 0)
    assert d.stats.duplicates == 1


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({}, "incomplete"),
        ({"drop_zero_variance": True}, "zero_variance"),
        ({"weights": {"b": 1.0}}, "unweighted"),
        ({"max_staleness": 1, "policy_version": 5}, "stale"),
    ],
)
def test_finished_units_are_dropped_closed_and_counted(
    options: dict[str, Any], reason: str
) -> None:
    feed = Feed(**options)
    d = feed.delivery
    if reason == "incomplete":
        feed.result(0, 0)
        feed.failure(0, 1)
    else:
        feed.result(0, 0, reward=1.0, version=3)
        feed.result(0, 1, reward=1.0, version=3)
    assert d.pop() is None
    assert d.stats.dropped == {reason: 1}
    assert d.stats.dropped_by_agent == {"a": 1}
    assert UnitKey("a", 0) in d.assembler.closed
    assert d.position().closed_units == 1


def test_an_incomplete_group_can_be_delivered_and_staleness_can_be_kept() -> None:
    feed = Feed(incomplete="deliver", max_staleness=0, on_stale="keep", policy_version=9)
    d = feed.delivery
    feed.result(0, 0, version=1)
    feed.failure(0, 1)
    group = d.pop()
    assert group is not None
    assert group.failed == (1,)
    assert d.stats.staleness == {8: 1}


def test_a_unit_gone_stale_while_held_is_dropped_at_hand_out() -> None:
    feed = Feed(max_staleness=1, policy_version=3)
    d = feed.delivery
    feed.group(0, version=3)
    feed.group(1, version=4)
    d.policy_version = 5  # the trainer moved on while both were held
    group = d.pop()
    assert group is not None
    assert group.task_index == 1
    assert d.stats.dropped == {"stale": 1}
    assert d.pop() is None


def test_finished_once_the_manifest_says_produced_and_every_unit_is_closed() -> None:
    feed = Feed()
    d = feed.delivery
    feed.group(0)
    assert not d.finished  # no manifest yet
    d.take_manifest(RunManifest(run_id=RUN, state="producing", expected={"a": 4}))
    assert d.expected is None
    d.take_manifest(produced(a=4))
    assert d.expected == {"a": 2}
    assert d.pop() is not None
    assert not d.finished
    feed.group(1)
    assert d.pop() is not None
    assert d.finished  # handed counts as accounted for
    d.acknowledge()
    assert d.finished


def test_a_manifest_that_does_not_divide_into_groups_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expects 3 rollouts for agent 'a'"):
        Feed().delivery.take_manifest(produced(a=3))


def test_position_and_restore_resume_exactly() -> None:
    feed = Feed(policy_version=2)
    d = feed.delivery
    feed.group(0)
    feed.result(1, 0)  # task 1 is still open: the watermark stays at its offset
    feed.group(2)
    feed.failure(3, 0)
    assert [d.pop(), d.pop()] != [None, None]
    assert d.position().results == {0: 0}  # handed, not acknowledged: comes again
    d.acknowledge()
    position = d.position()
    assert position.results == {0: 2}
    assert position.failures == {0: 0}  # task 3 still open
    assert position.closed_units == 2
    assert position.acknowledged_units == 2
    assert position.policy_version == 2

    again = Feed().delivery
    again.restore(position)
    assert again.policy_version == 2  # taken from the position when the options have none
    assert UnitKey("a", 2) in again.assembler.closed
    assert UnitKey("a", 1) not in again.assembler.closed
    assert again.position().acknowledged_units == 2
    with pytest.raises(ConfigError, match="group size 2; this stream asks for run r1, unit "):
        Delivery(
            StreamOptions(run_id=RUN, unit="rollout"),
            results_topic=RESULTS,
            failures_topic=FAILURES,
        ).restore(position)


# --- group sizes from the run's manifest ------------------------------------------------------


def test_per_agent_repeats_from_the_manifest_group_each_agent_by_its_own_size() -> None:
    feed = Feed(group_size=None)
    d = feed.delivery
    feed.result(0, 0, agent="a")  # read before the manifest: it waits, nothing is assembled
    assert d.pop() is None
    assert d.position().results == {}  # the watermark has not passed the waiting message
    d.take_manifest(RunManifest(run_id=RUN, state="producing", repeats={"b": 3, "_default": 2}))
    feed.result(0, 1, agent="a")
    group = d.pop()
    assert group is not None
    assert (group.agent, len(group.rollouts)) == ("a", 2)
    feed.result(0, 0, agent="b")
    feed.result(0, 1, agent="b")
    assert d.pop() is None  # b's groups are of 3
    feed.result(0, 2, agent="b")
    group = d.pop()
    assert group is not None
    assert (group.agent, len(group.rollouts)) == ("b", 3)
    d.acknowledge()
    d.take_manifest(
        RunManifest(
            run_id=RUN, state="produced", expected={"a": 2, "b": 3}, repeats={"b": 3, "_default": 2}
        )
    )
    assert d.expected == {"a": 1, "b": 1}
    assert d.finished


def test_a_manifest_without_repeats_needs_a_group_size() -> None:
    feed = Feed(group_size=None)
    with pytest.raises(ConfigError, match=r"records no repeats.*--group-size"):
        feed.delivery.take_manifest(produced(a=4))
    Feed(group_size=None, unit="rollout").delivery.take_manifest(produced(a=4))  # no size needed


def test_the_group_size_overrides_the_manifest() -> None:
    feed = Feed(group_size=2)
    feed.delivery.take_manifest(
        RunManifest(run_id=RUN, state="produced", expected={"a": 4}, repeats={"_default": 4})
    )
    assert feed.delivery.expected == {"a": 2}
