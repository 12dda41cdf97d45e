"""`gymstream runs list`'s rows and the one line about a run's several models (pure)."""

from __future__ import annotations

from gymstream.runs.admin import run_row
from gymstream.runs.models import mixed_models_line, model_label
from gymstream.wire.records import RunManifest, SinkProgress


def _manifest(**changes: object) -> RunManifest:
    fields: dict[str, object] = {
        "run_id": "r1",
        "state": "produced",
        "expected": {"a": 3, "b": 1},
        "created_ms": 1_000,
        "namespace": "run-r1-12345678",
    }
    return RunManifest(**(fields | changes))  # type: ignore[arg-type]


def test_a_run_s_row_says_state_counts_age_and_namespace() -> None:
    sink = SinkProgress(run_id="r1", written={"a": 2}, failed={"b": 1})
    row = run_row(_manifest(), sink, now_ms=61_000)
    assert (row.state, row.expected, row.written, row.failed) == ("produced", 4, 2, 1)
    assert (row.age_s, row.namespace, row.finished) == (60.0, "run-r1-12345678", False)


def test_every_rollout_accounted_for_is_complete() -> None:
    sink = SinkProgress(run_id="r1", written={"a": 3}, failed={"b": 1})
    assert run_row(_manifest(), sink, now_ms=2_000).state == "complete"
    assert run_row(_manifest(), sink, now_ms=2_000).finished


def test_a_producing_run_has_no_total_and_an_old_manifest_is_shared() -> None:
    row = run_row(_manifest(state="producing", namespace=""), None, now_ms=2_000)
    assert (row.state, row.expected, row.written, row.namespace) == ("producing", None, 0, "shared")


def test_a_cancel_wins_over_every_other_state() -> None:
    row = run_row(_manifest(cancelled_ms=5), None, now_ms=2_000)
    assert (row.state, row.finished) == ("cancelled", True)


def test_one_model_says_nothing_several_say_so_in_one_line() -> None:
    a, b = model_label("m-a", "http://a/v1"), model_label("m-b", "http://b/v1")
    assert a == "m-a at http://a/v1"
    assert model_label("", "") == ""
    assert mixed_models_line("r1", {a: 10}) is None
    assert mixed_models_line("r1", {a: 3, b: 7}) == (
        "rows of run r1 come from 2 models: m-b at http://b/v1 (7), m-a at http://a/v1 (3)"
    )
