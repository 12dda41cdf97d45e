"""A sink that refuses its output leaves the output's directory exactly as it was (issue 19).

The refusal comes before any Kafka connection, so no broker is needed: the output belongs to
another run (without --overwrite) or is a directory, and neither ``OUT.lock`` nor any other file
is created or rewritten.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gymstream.cli.main import app
from gymstream.nemo_gym.outputs.files import OutputPaths


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every path under ``directory`` with its bytes (None for a directory)."""
    return {
        str(path.relative_to(directory)): None if path.is_dir() else path.read_bytes()
        for path in sorted(directory.rglob("*"))
    }


def sink(output: Path, run_id: str) -> tuple[int, str]:
    args = ["sink", "--output", str(output), "--run-id", run_id, "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--bootstrap", "127.0.0.1:1"])
    return result.exit_code, result.output


@pytest.mark.parametrize("lock", [None, b"pid 1 on elsewhere since 2026-01-01 00:00:00"])
def test_a_sink_refused_a_foreign_output_creates_or_rewrites_no_lock(
    lock: bytes | None, tmp_path: Path
) -> None:
    paths = OutputPaths(tmp_path / "out.jsonl")
    paths.output.write_bytes(b'{"reward": 1.0}\n')
    paths.run_file.write_bytes(b'{"run_id": "r1"}')
    if lock is not None:
        paths.lock.write_bytes(lock)
    before = snapshot(tmp_path)
    code, output = sink(paths.output, "r2")
    assert code == 2, output
    assert "already holds the output of run 'r1'" in output
    assert snapshot(tmp_path) == before  # no out.lock created, an old one's bytes unchanged


def test_a_sink_refused_a_directory_output_creates_no_lock(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    before = snapshot(tmp_path)
    code, output = sink(tmp_path / "results", "r1")
    assert code == 2, output
    assert "is a directory" in output
    assert snapshot(tmp_path) == before  # no results.lock beside it
