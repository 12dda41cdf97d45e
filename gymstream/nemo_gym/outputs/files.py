"""The output files of a run: NeMo Gym JSONL rows, failures, run identity, aggregate metrics.

Files for ``OUT.jsonl``: ``OUT.jsonl`` (one NeMo Gym output row per successful rollout),
``OUT_failures.jsonl`` (typed failures, NeMo Gym's ``_ng_failure_*`` keys), ``OUT_run.json`` (the
run id the file belongs to, so a resume can check it) and ``OUT_aggregate_metrics.json`` (written
by ``metrics``). The rows themselves are built by ``output_row``; this module writes and reads the
files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from gymstream.errors import ConfigError
from gymstream.nemo_gym.outputs.output_row import (
    ROLLOUT_INDEX,
    TASK_INDEX,
    agent_of,
    row_rollout_id,
)
from gymstream.nemo_gym.outputs.rollout_set import RolloutSet
from gymstream.wire.codec import ENCODER

__all__ = [
    "OutputPaths",
    "check_claim",
    "claim_output",
    "hold_output",
    "iter_rows",
    "move_to_history",
    "read_done_ids",
    "read_rollouts",
    "read_run_file",
    "repair_torn_tail",
    "write_run_file",
]

_DECODER = msgspec.json.Decoder()


@dataclass(frozen=True)
class OutputPaths:
    """Every file that belongs to one output path."""

    output: Path

    @property
    def failures(self) -> Path:
        return self.output.with_name(f"{self.output.stem}_failures.jsonl")

    @property
    def run_file(self) -> Path:
        return self.output.with_name(f"{self.output.stem}_run.json")

    @property
    def failures_history(self) -> Path:
        return self.output.with_name(f"{self.output.stem}_failures_history.jsonl")

    @property
    def metrics(self) -> Path:
        return self.output.with_name(f"{self.output.stem}_aggregate_metrics.json")

    @property
    def rejects(self) -> Path:
        return self.output.with_name(f"{self.output.stem}_rejects.jsonl")

    @property
    def materialized(self) -> Path:
        return self.output.with_name(f"{self.output.stem}_materialized_inputs.jsonl")

    @property
    def lock(self) -> Path:
        return self.output.with_name(f"{self.output.stem}.lock")


@contextlib.contextmanager
def hold_output(paths: OutputPaths, run_id: str, *, overwrite: bool) -> Iterator[None]:
    """Hold the output's exclusive lock (``OUT.lock``, flock) while writing it: one writer per
    output. Raises ConfigError naming the holder (pid, host, since) when another process holds
    it, also a stopped one. The lock file stays (deleting it would race); the lock goes with
    the process, however it ends.

    The claim is checked first (``check_claim``, which only reads): an output this run may not
    write leaves its directory exactly as it was, no lock file created or rewritten. Between
    that check and the lock another writer may claim the output; then either it still holds
    the lock (refused here, the lock file untouched: it is only opened, never truncated, until
    the lock is ours) or it is gone and ``claim_output``, run under the lock, refuses."""
    check_claim(paths, run_id, overwrite=overwrite)
    paths.output.parent.mkdir(parents=True, exist_ok=True)
    handle = paths.lock.open("a+b")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().decode("utf-8", "replace").strip() or "another process"
            raise ConfigError(
                f"{paths.output} is being written by {holder}; two writers would double rows: "
                "stop that sink (or wait for it to finish), or choose another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}".encode())
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def check_claim(paths: OutputPaths, run_id: str, *, overwrite: bool) -> bool:
    """Whether ``claim_output`` would bind the output to ``run_id``, reading only: True when
    resuming an earlier run's output; raises ConfigError with what to do when it would not."""
    if paths.output.is_dir():
        raise ConfigError(
            f"--output {paths.output} is a directory: give the output file, e.g. "
            f"{paths.output / 'out.jsonl'}"
        )
    existing_run: str | None = None
    if paths.run_file.exists():
        try:
            existing_run = str(_DECODER.decode(paths.run_file.read_bytes())["run_id"])
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{paths.run_file}: unreadable run file; delete it or pass --overwrite"
            ) from exc
    if existing_run == run_id:
        return True
    # any non-empty file of the output counts: failures alone are a run's evidence too
    has_rows = any(
        path.exists() and path.stat().st_size > 0 for path in (paths.output, paths.failures)
    )
    if (has_rows or existing_run is not None) and not overwrite:
        owner = f"run '{existing_run}'" if existing_run else "an unknown run"
        raise ConfigError(
            f"{paths.output} already holds the output of {owner}; pass --run-id {existing_run} "
            "to resume it, choose another --output, or pass --overwrite to replace it"
            if existing_run
            else f"{paths.output} already exists and holds the output of {owner}; choose "
            "another --output or pass --overwrite to replace it"
        )
    return False


def claim_output(paths: OutputPaths, run_id: str, *, overwrite: bool) -> bool:
    """Bind the output file to ``run_id``; True when resuming an earlier run's output.

    An existing output of another run is never touched unless ``overwrite`` (then its files are
    removed). Raises ConfigError with what to do otherwise (``check_claim``). Call it under
    ``hold_output``: the check is repeated there, with the lock held.
    """
    if check_claim(paths, run_id, overwrite=overwrite):
        return True
    for path in (paths.output, paths.failures, paths.metrics):
        if path.exists():
            path.unlink()
    paths.output.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(paths.run_file, ENCODER.encode({"run_id": run_id}))
    return False


def read_run_file(paths: OutputPaths) -> dict[str, Any] | None:
    """The run file's content (run id, retried attempts), or None when there is none."""
    if not paths.run_file.exists():
        return None
    data = _DECODER.decode(paths.run_file.read_bytes())
    return data if isinstance(data, dict) else None


def write_run_file(paths: OutputPaths, data: bytes) -> None:
    _write_atomic(paths.run_file, data)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that a crash left without its newline; returns the bytes removed.

    A last line that is complete JSON (a row whose newline is all that is missing: an editor,
    a ``head -c``, another tool) is kept and given its newline: its offset may be committed,
    so cutting it would lose the row for good."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # walk back to the previous newline
        pos = size - 1
        chunk = 64 * 1024
        while pos > 0:
            start = max(0, pos - chunk)
            handle.seek(start)
            data = handle.read(pos - start)
            idx = data.rfind(b"\n")
            if idx >= 0:
                pos = start + idx + 1
                break
            pos = start
        handle.seek(pos)
        if _is_json(handle.read(size - pos)):
            handle.seek(size)
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
            return 0
        handle.truncate(pos)
        handle.flush()
        os.fsync(handle.fileno())
        return size - pos


def move_to_history(paths: OutputPaths, run_id: str, rollout_ids: Collection[str]) -> int:
    """Move the failure rows of ``rollout_ids`` from the failures file to the history file
    (appended and fsynced first, then the failures file replaced atomically: a crash between
    leaves a row in both, never in neither); returns how many rows moved. Nothing is deleted."""
    if not rollout_ids or not paths.failures.exists():
        return 0
    keep: list[bytes] = []
    moved: list[bytes] = []
    for line in paths.failures.read_bytes().splitlines():
        if line.strip():
            rid = row_rollout_id(run_id, _DECODER.decode(line))
            (moved if rid in rollout_ids else keep).append(line)
    if not moved:
        return 0
    with paths.failures_history.open("ab") as history:
        history.write(b"".join(line + b"\n" for line in moved))
        history.flush()
        os.fsync(history.fileno())
    _write_atomic(paths.failures, b"".join(line + b"\n" for line in keep))
    return len(moved)


def _is_json(line: bytes) -> bool:
    try:
        _DECODER.decode(line)
    except msgspec.DecodeError:
        return False
    return True


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield _DECODER.decode(line)


def read_done_ids(path: Path, run_id: str) -> set[str]:
    """Rollout ids already in an output or failures file of ``run_id`` (for dedupe on restart)."""
    done: set[str] = set()
    for row in iter_rows(path):
        done.add(row_rollout_id(run_id, row))
    return done


def read_rollouts(path: Path) -> RolloutSet:
    """The rollouts in an output or failures file, about a bit each (the sink's restart)."""
    done = RolloutSet()
    for row in iter_rows(path):
        done.add(agent_of(row), int(row[TASK_INDEX]), int(row[ROLLOUT_INDEX]))
    return done
