"""Several runs in one stream, without a broker: where to read from, routing, hand-out order."""

from __future__ import annotations

import pytest
from fixtures.messages import result_message

from gymstream.trainer.options import StreamOptions
from gymstream.trainer.runset import RunSet
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import group_key

RESULTS, FAILURES = "t.results", "t.failures"
TP = (RESULTS, 0)


def runset() -> RunSet:
    options = StreamOptions(run_ids=("e0", "e1"), group_size=2)
    return RunSet(options, ["e0", "e1"], results_topic=RESULTS, failures_topic=FAILURES)


def feed(runs: RunSet, offset: int, run: str, task: int, rollout: int) -> None:
    message = result_message(task, rollout, run=run)
    runs.take(TP, offset, group_key(run, "a", task), ENCODER.encode(message))


def test_the_reader_starts_at_the_lowest_offset_and_each_run_ignores_what_lies_below_its_own() -> (
    None
):
    runs = runset()
    assert runs.start_offset(TP, {"e0": 2, "e1": 4}) == 2
    feed(runs, 2, "e0", 0, 0)
    feed(runs, 3, "e1", 0, 0)  # below e1's offset 4: e1 closed it before (it is not re-read)
    feed(runs, 4, "e0", 0, 1)
    feed(runs, 5, "e1", 0, 1)
    group = runs.pop()
    assert group is not None
    assert (group.run_id, [r.rollout_index for r in group.rollouts]) == ("e0", [0, 1])
    assert runs.pop() is None  # e1/a/0 has only one rollout past e1's own offset
    # each run re-reads from its oldest live message: e0 handed (unacknowledged) at 2, e1 at 5
    assert [p.results for p in runs.positions()] == [{0: 2}, {0: 5}]
    runs.acknowledge()
    assert [p.results for p in runs.positions()] == [{0: 6}, {0: 5}]


def test_a_run_without_a_saved_offset_makes_the_reader_start_at_the_beginning() -> None:
    assert runset().start_offset(TP, {"e0": 7}) is None


def test_units_come_run_by_run_and_acknowledge_by_run() -> None:
    runs = runset()
    for offset, (run, task, rollout) in enumerate(
        [("e1", 0, 0), ("e1", 0, 1), ("e0", 0, 0), ("e0", 0, 1)]
    ):
        feed(runs, offset, run, task, rollout)
    first, second = runs.pop(), runs.pop()
    assert first is not None
    assert second is not None
    assert (first.run_id, second.run_id) == ("e0", "e1")  # the order the runs were given
    assert runs.acknowledge([second]) == 1
    assert [g.run_id for g in runs.handed] == ["e0"]
    with pytest.raises(ValueError, match="not handed"):
        runs.acknowledge([second])
    runs.policy_version = 3
    assert [d.policy_version for d in runs.runs.values()] == [3, 3]
    assert runs.stats.delivered_total == 2


def test_options_name_exactly_one_choice_of_runs() -> None:
    for bad in [{}, {"run_id": "a", "run_prefix": "e"}, {"run_ids": ("a", "a")}]:
        with pytest.raises(ValueError, match="run"):
            StreamOptions.model_validate(bad)
    per_run = StreamOptions(run_prefix="e", group_size=2).for_run("e7")
    assert (per_run.run_id, per_run.run_prefix, per_run.group_size) == ("e7", "", 2)
