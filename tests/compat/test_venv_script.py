"""scripts/nemo-gym-venv without a Python >= 3.13: a clear exit, saying what to install."""

from __future__ import annotations

import subprocess
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "nemo-gym-venv"


def test_without_python_313_it_exits_3_saying_what_to_install(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",  # no pyenv shims
        "HOME": str(tmp_path),
        "PYENV_ROOT": str(tmp_path / "no-pyenv"),
        "GYMSTREAM_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = subprocess.run([str(_SCRIPT)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stderr
    assert "needs Python >= 3.13" in done.stderr
    assert "pyenv install 3.13" in done.stderr
    assert not (tmp_path / "cache" / "nemo-gym-0.7.0-py3.13").exists()
