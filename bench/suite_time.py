"""How long the test command takes: ``./scripts/test`` timed in a fresh clone (or a given tree).

A benchmark, not a test: it prints the wall time of the whole command (venv, pinned install,
static checks, pytest), pytest's own time, the test count and the slowest tests (``scripts/test``
runs pytest with ``--durations=15``), with the machine's core count and load average before and
after, so that a figure from a busy machine is read as such.

    python -m bench.suite_time                     # a fresh clone of HEAD: the whole suite
    python -m bench.suite_time --rev main          # ... of another commit
    python -m bench.suite_time --tree .            # this working tree as it is (no clone)
    python -m bench.suite_time --tree . -- tests/unit -x    # after --: arguments for pytest
    python -m bench.suite_time --json suite.json   # also write the figures as JSON

With ``GYMSTREAM_TEST_BOOTSTRAP`` set, the suite uses that broker instead of starting its own
(see tests/fixtures/broker.py). The clone is made with ``git clone --no-hardlinks`` into a
temporary folder (committed work only), removed afterwards unless ``--keep``; the command's
whole output goes to ``suite.log`` there (its tail is printed on failure). Exits with the test
command's exit code. Run it on a quiet machine: other work on the cores lengthens every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["SuiteTime", "main", "parse_output", "time_suite"]

ROOT = Path(__file__).resolve().parent.parent
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)")
_SUMMARY = re.compile(r"^=+ (.*\d+ (?:passed|failed|errors?|skipped).*) in ([\d.]+)s")
_DURATION = re.compile(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)")


@dataclass
class SuiteTime:
    """What one run of the test command took and did."""

    tree: str
    command: list[str]
    exit_code: int = 0
    wall_s: float = 0.0
    pytest_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    slowest: list[tuple[float, str, str]] = field(default_factory=list)  # (s, phase, test id)
    nproc: int = 0
    loadavg_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    loadavg_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def parse_output(text: str, result: SuiteTime) -> None:
    """Fill ``result``'s pytest time, counts and slowest tests from pytest's output."""
    in_durations = False
    for line in text.splitlines():
        if "slowest" in line and "durations" in line and line.startswith("="):
            in_durations = True
            continue
        if in_durations:
            found = _DURATION.match(line.strip())
            if found:
                result.slowest.append((float(found[1]), found[2], found[3]))
                continue
            if line.strip():
                in_durations = False
        summary = _SUMMARY.match(line.strip())
        if summary:
            result.pytest_s = float(summary[2])
            result.counts = {
                kind.rstrip("s") if kind.startswith("error") else kind: int(n)
                for n, kind in _COUNT.findall(summary[1])
            }


def _clone(rev: str, into: Path) -> Path:
    tree = into / "gymstream"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "checkout", "--quiet", rev], check=True)
    return tree


def time_suite(tree: Path, pytest_args: list[str], log: Path) -> SuiteTime:
    """Run ``./scripts/test [pytest_args]`` in ``tree``; its output goes to ``log``."""
    command = ["./scripts/test", *pytest_args]
    result = SuiteTime(tree=str(tree), command=command, nproc=os.cpu_count() or 0)
    result.loadavg_before = os.getloadavg()
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, cwd=tree, stdout=out, stderr=subprocess.STDOUT, check=False)
    result.wall_s = time.perf_counter() - started
    result.loadavg_after = os.getloadavg()
    result.exit_code = done.returncode
    parse_output(log.read_text(errors="replace"), result)
    return result


def render(result: SuiteTime) -> str:
    """The figures as a few lines of text."""
    minutes, seconds = divmod(result.wall_s, 60)
    counts = ", ".join(f"{n} {kind}" for kind, n in result.counts.items()) or "no pytest summary"
    before = " ".join(f"{x:.1f}" for x in result.loadavg_before)
    after = " ".join(f"{x:.1f}" for x in result.loadavg_after)
    lines = [
        f"tree: {result.tree}",
        f"command: {' '.join(result.command)} (exit {result.exit_code})",
        f"wall time: {result.wall_s:.1f} s ({int(minutes)} min {seconds:.0f} s); "
        f"pytest: {result.pytest_s if result.pytest_s is not None else '?'} s",
        f"tests: {counts}",
        f"machine: {result.nproc} cores, load average {before} before, {after} after",
        f"slowest {len(result.slowest)}:",
        *(f"  {s:8.2f} s  {phase:<8} {test}" for s, phase, test in result.slowest),
    ]
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite_time",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--tree", type=Path, help="time this tree as it is (no clone)")
    where.add_argument("--rev", default="HEAD", help="clone this commit (default HEAD)")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its log")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gymstream-suite-time-"))
    try:
        if args.tree is not None:
            tree = args.tree.resolve()
        else:
            rev = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", args.rev],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            tree = _clone(rev, work)
        log = work / "suite.log"
        result = time_suite(tree, args.pytest_args, log)
        print(render(result))
        if result.exit_code != 0:
            print(f"\nthe test command failed; its output ({log}):", file=sys.stderr)
            print(log.read_text(errors="replace")[-6000:], file=sys.stderr)
        if args.json is not None:
            args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
        return result.exit_code
    finally:
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
