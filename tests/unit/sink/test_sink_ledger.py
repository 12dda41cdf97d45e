"""The sink's pure step without a broker: rows to append, duplicates, failures, completion."""

from __future__ import annotations

import json

import msgspec
from message_helpers import failure_message, result_message

from gymstream.nemo_gym.outputs.rollout_set import RolloutSet
from gymstream.sink.ledger import SinkLedger, SinkReport
from gymstream.wire.keys import rollout_id
from gymstream.wire.messages import FailureMessage, ResultMessage
from gymstream.wire.records import RunManifest

RUN = "r1"


def rid(task: int, rollout: int = 0, agent: str = "a") -> str:
    return rollout_id(RUN, agent, task, rollout)


def result(task: int, *, agent: str = "a", reward: float = 1.0, run: str = RUN) -> ResultMessage:
    return result_message(task, agent=agent, reward=reward, run=run)


def failure(task: int, *, agent: str = "a", attempt: int = 0, run: str = RUN) -> FailureMessage:
    return failure_message(task, agent=agent, attempt=attempt, row={"t": task}, run=run)


def rollouts(*tasks: int, agent: str = "a") -> RolloutSet:
    return RolloutSet((agent, task, 0) for task in tasks)


def ledger(
    written: RolloutSet | None = None,
    failed: RolloutSet | None = None,
    retried: dict[str, int] | None = None,
) -> SinkLedger:
    return SinkLedger(SinkReport(run_id=RUN), written, failed, retried)


def produced(**expected: int) -> RunManifest:
    return RunManifest(run_id=RUN, state="produced", expected=expected)


def test_results_become_output_rows_once_and_repeats_count_as_duplicates() -> None:
    book = ledger()
    rows = book.take([result(0, reward=0.5), result(1, reward=1.0), result(0, reward=0.5)])
    assert [json.loads(r) for r in rows.output] == [
        {"task": 0, "rollout": 0},
        {"task": 1, "rollout": 0},
    ]
    assert rows.failures == []
    again = book.take([result(1)])
    assert again.output == []
    report = book.report
    assert report.duplicates == 2
    assert report.written == {"a": 2}
    assert report.reward_sum == {"a": 1.5}
    assert report.accounted == 2


def test_rollouts_already_in_the_files_are_not_written_again() -> None:
    book = ledger(written=rollouts(0), failed=rollouts(1, 0))
    assert book.report.resumed_rows == 2  # the failed rid(0) was superseded by its result
    assert book.report.accounted == 2
    rows = book.take([result(0), failure(1), result(2)])
    assert [json.loads(r)["task"] for r in rows.output] == [2]
    assert rows.failures == []
    assert book.report.duplicates == 2
    assert book.report.accounted == 3


def test_failures_are_counted_by_agent_and_class_and_written_as_failure_rows() -> None:
    book = ledger()
    rows = book.take([failure(0, agent="a"), failure(0, agent="b"), failure(0, agent="b")])
    assert [json.loads(r)["agent_ref"] for r in rows.failures] == [{"name": "a"}, {"name": "b"}]
    first = json.loads(rows.failures[0])
    assert first["t"] == 0
    assert first["_ng_failure_class"] == "model_unavailable"
    report = book.report
    assert report.failed == {"a": 1, "b": 1}
    assert report.failure_classes == {"model_unavailable": 2}
    assert report.duplicates == 1
    assert report.written == {}


def test_a_result_supersedes_a_failure_but_not_the_other_way_round() -> None:
    book = ledger()
    rows = book.take([failure(0), result(0), result(1), failure(1)])
    assert [json.loads(r)["task"] for r in rows.output] == [0, 1]
    assert len(rows.failures) == 1  # written before the result came; the files keep both
    assert set(book.failed) == set()
    assert set(book.written) == {("a", 0, 0), ("a", 1, 0)}
    assert book.report.duplicates == 1  # failure(1) after its result
    assert book.report.accounted == 2


def test_a_stale_failure_of_an_earlier_attempt_is_ignored() -> None:
    book = ledger(retried={rid(0): 2})
    rows = book.take([failure(0, attempt=1)])
    assert rows.failures == []
    assert book.report.failed == {}
    assert book.report.duplicates == 0
    assert book.report.accounted == 0
    rows = book.take([failure(0, attempt=2)])  # the new attempt's failure counts
    assert len(rows.failures) == 1
    assert book.report.accounted == 1


def test_other_runs_are_ignored() -> None:
    book = ledger()
    rows = book.take([result(0, run="r2"), failure(1, run="r2")])
    assert (rows.output, rows.failures) == ([], [])
    assert book.report.accounted == 0
    assert book.report.duplicates == 0


def test_the_run_is_complete_once_produced_and_every_rollout_is_accounted_for() -> None:
    book = ledger()
    assert not book.check_complete(None)
    book.take([result(0), failure(1)])
    producing = RunManifest(run_id=RUN, state="producing", expected={"a": 2})
    assert not book.check_complete(producing)
    assert book.report.expected is None
    assert not book.check_complete(produced(a=2, b=1))
    assert book.report.expected == {"a": 2, "b": 1}
    assert book.report.expected_total == 3
    assert not book.report.complete
    book.take([result(0, agent="b")])
    assert book.check_complete(produced(a=2, b=1))
    assert book.report.complete


def test_following_never_completes() -> None:
    book = ledger()
    book.take([result(0)])
    assert not book.check_complete(produced(a=1), follow=True)
    assert book.report.expected == {"a": 1}
    assert not book.report.complete


def test_a_result_supersedes_a_failure_and_says_so() -> None:
    book = ledger(written=rollouts(5), failed=rollouts(0, 5))
    assert book.superseded_on_disk == {rid(5)}  # in both files on start: its failure moves
    rows = book.take([failure(1), result(0), result(1), result(2)])
    assert rows.superseded == {rid(0), rid(1)}  # one from the file, one from this batch
    assert book.report.superseded == 2
    assert book.report.accounted == 4


def test_written_results_feed_the_latency_histograms_and_token_totals_repeats_do_not() -> None:
    book = ledger()
    first = msgspec.structs.replace(
        result(0), timings={"total_s": 2.0, "model_s": 1.5}, tokens={"output_tokens": 10}
    )
    second = msgspec.structs.replace(
        result(1), timings={"total_s": 4.0}, tokens={"output_tokens": 5, "input_tokens": 3}
    )
    book.take([first, second, first])  # the repeat is dropped, and not counted twice
    report = book.report
    assert report.tokens == {"output_tokens": 15, "input_tokens": 3}
    total = report.timings.by_name["total_s"]
    assert (total.count, total.min, total.max) == (2, 2.0, 4.0)
    assert report.timings.by_name["model_s"].count == 1


def test_results_are_counted_per_model_and_several_models_are_one_line() -> None:
    book = ledger()
    a = msgspec.structs.replace(result(0), model_name="m-a", model_base_url="http://a/v1")
    b = msgspec.structs.replace(result(1), model_name="m-b", model_base_url="http://b/v1")
    old = result(2)  # an older worker's result says no model: not counted as one
    book.take([a, old])
    assert book.report.models == {"m-a at http://a/v1": 1}
    assert book.report.mixed_models is None
    book.take([b, a])  # the second a is a duplicate: not counted again
    assert book.report.models == {"m-a at http://a/v1": 1, "m-b at http://b/v1": 1}
    assert book.report.mixed_models == (
        "rows of run r1 come from 2 models: m-a at http://a/v1 (1), m-b at http://b/v1 (1)"
    )
