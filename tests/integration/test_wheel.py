"""The wheel behaves like the checkout: built from the repo, installed in a fresh venv outside it.

It must find its package data (topics.yaml, the example environments and their data, the local
Kafka launcher's files) without the repository: the demo runs from the installed package and
creates the topics the packaged topics.yaml declares (a compacted runs topic, 12 task partitions).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka_helpers import list_topics, partitions_of, topic_config
from pipeline_helpers import AGENT_MULTI, AGENT_ONE, ROOT, read_jsonl

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    local = Path.home() / ".local" / "bin" / "uv"
    return str(local) if local.exists() else None


def _run(
    args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, timeout=300, cwd=cwd, env=env
    )
    assert done.returncode == 0, (
        f"{args[:3]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def _install_wheel(tmp: Path) -> Path:
    """Build the wheel and install it, pinned by requirements.lock, into a venv under ``tmp``."""
    dist, venv = tmp / "dist", tmp / "venv"
    uv = _uv()
    if uv:
        _run([uv, "build", "--wheel", "-q", "-o", str(dist), str(ROOT)])
        _run([uv, "venv", "-q", "--python", sys.executable, str(venv)])
        wheel = next(dist.glob("gymstream-*.whl"))
        _run(
            [
                uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(venv / "bin" / "python"),
                "-c",
                str(ROOT / "requirements.lock"),
                str(wheel),
            ]
        )
    else:
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)])
        _run([sys.executable, "-m", "venv", str(venv)])
        wheel = next(dist.glob("gymstream-*.whl"))
        _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "-c",
                str(ROOT / "requirements.lock"),
                str(wheel),
            ]
        )
    return venv


async def test_the_installed_wheel_runs_the_demo_and_makes_the_packaged_topics(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    venv = _install_wheel(tmp_path)
    work = tmp_path / "elsewhere"  # not the repository: nothing may be found through it
    work.mkdir()
    prefix = f"wheel{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GYMSTREAM_")}
    env.pop("PYTHONPATH", None)
    env |= {"GYMSTREAM_TOPIC_PREFIX": prefix, "GYMSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap}
    where = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import gymstream, environments; "
            "print(gymstream.__file__); print(environments.__file__)",
        ],
        cwd=work,
        env=env,
    )
    assert all(str(ROOT) not in line for line in where.stdout.splitlines()), where.stdout

    _run([str(venv / "bin" / "gymstream"), "demo", "--output-dir", "out"], cwd=work, env=env)

    rows = read_jsonl(work / "out" / "test_multiverifier_outputs.jsonl")
    agents = {row["agent_ref"]["name"] for row in rows}
    assert agents == {AGENT_ONE, AGENT_MULTI}
    assert all(isinstance(row["reward"], float) for row in rows)
    runs = await topic_config(kafka_bootstrap, f"{prefix}.runs")
    assert runs["cleanup.policy"] == "compact,delete"
    assert runs["retention.ms"] == "7776000000"
    # the demo ran in its private namespace (docs/scopes.md) and dropped its task topics when
    # complete: none is left, neither a shared nor a private one
    left = [t for t in await list_topics(kafka_bootstrap) if t.startswith(prefix)]
    assert not [t for t in left if ".tasks." in t], left
    assert len(await partitions_of(kafka_bootstrap, f"{prefix}.results")) == 12
