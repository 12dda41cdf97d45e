"""bench.suite_time reads pytest's summary and --durations block (no suite is run here)."""

from __future__ import annotations

from bench.suite_time import SuiteTime, parse_output, render

OUTPUT = """\
scripts/test: ruff, mypy and the import contracts pass
........................................................................ [ 99%]
.                                                                        [100%]
============================= slowest 15 durations =============================
41.20s call     tests/faults/test_crashes.py::test_worker_killed_repeatedly
3.50s setup    tests/compat/test_harness.py::test_single_tool_call
0.91s teardown tests/integration/test_stream.py::test_cli_prints_groups_and_resumes[x-1]

(870 durations < 0.005s hidden.  Use -vv to show these durations.)
=========================== short test summary info ============================
SKIPPED [1] tests/unit/test_images.py:12: no docker
=========== 2 failed, 870 passed, 1 skipped, 3 warnings in 431.27s (0:07:11) ===========
"""


def test_counts_time_and_slowest_are_read() -> None:
    result = SuiteTime(tree="t", command=["./scripts/test"])
    parse_output(OUTPUT, result)
    assert result.pytest_s == 431.27
    assert result.counts == {"failed": 2, "passed": 870, "skipped": 1, "warnings": 3}
    assert result.slowest == [
        (41.2, "call", "tests/faults/test_crashes.py::test_worker_killed_repeatedly"),
        (3.5, "setup", "tests/compat/test_harness.py::test_single_tool_call"),
        (
            0.91,
            "teardown",
            "tests/integration/test_stream.py::test_cli_prints_groups_and_resumes[x-1]",
        ),
    ]
    text = render(result)
    assert "870 passed" in text
    assert "41.20 s  call" in text


def test_no_summary_is_said() -> None:
    result = SuiteTime(tree="t", command=["./scripts/test"])
    parse_output("scripts/test: mypy failed (see above)\n", result)
    assert result.pytest_s is None
    assert result.counts == {}
    assert "no pytest summary" in render(result)
