"""fixtures.waits: a wait goes on while what it watches moves, and fails when it is stuck."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.waits import run_to_end, wait_exit, wait_until

# a child that writes a line every 0.25 s, 8 times: slow, but never stuck
WRITER = "import time\nfor i in range(8):\n    print(i, flush=True)\n    time.sleep(0.25)\n"


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_run_to_end_gives_the_output_and_exit_code() -> None:
    done = run_to_end([sys.executable, "-c", "import sys; print('out'); sys.exit('err')"])
    assert (done.returncode, done.stdout, done.stderr) == (1, "out\n", "err\n")
    raw = run_to_end([sys.executable, "-c", "print('x')"], text=False)
    assert raw.stdout == b"x\n"


def test_a_wait_outlasts_its_stall_limit_while_the_output_grows(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with out.open("w") as handle:
        proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=handle)
    try:  # 2 s of output, 1 s allowed without progress: the growth keeps the wait going
        wait_until(lambda: lines(out) >= 8, 1.0, "8 lines", watch=[proc, out])
    finally:
        proc.wait()
    assert lines(out) == 8


def test_a_stuck_process_fails_the_wait_saying_so(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(AssertionError, match="no progress for 1 s"):
            wait_exit(proc, "a sleeper", stall_s=1.0)
    finally:
        proc.kill()
        proc.wait()


def test_a_watched_process_that_exits_fails_the_wait_at_once(tmp_path: Path) -> None:
    log = tmp_path / "stage.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], stdout=handle
        )
    with pytest.raises(AssertionError, match=r"exited with 3(.|\n)*boom"):
        wait_until(lambda: False, 60, "rows that never come", watch=[proc, log])


def test_without_anything_to_watch_the_limit_is_a_deadline() -> None:
    with pytest.raises(AssertionError, match="waiting for nothing: no progress for 0 s"):
        wait_until(lambda: False, 0.2, "nothing")
