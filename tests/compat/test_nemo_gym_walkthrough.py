"""The NeMo Gym walkthrough of docs/nemo_gym_compat.md runs as written, against NeMo Gym's real
``ng_run``.

The bash block under the ``tested-block: nemo-gym-walkthrough`` marker is read from the document
itself (so the two cannot drift) and run with ``bash -euo pipefail`` in a scratch folder: NeMo
Gym 0.7.0's own ``ng_run`` from the cached venv (Ray, its head server, the model server, both
example resources servers, their simple_agents and environment servers), then ``gymstream
collect`` and the staged ``worker`` x 2 / ``produce`` / ``sink`` against the test session's
broker. Only what the block reads from the environment changes: free ports (``HEAD_PORT``,
``MODEL_PORT``, ``PORT_LOW``..``PORT_HIGH``), the broker and a private topic prefix.

It waits on progress: the block's logs and outputs must keep growing (a stall of ``_STALL_S``
fails with every log's tail); never a fixed sleep. Its processes run in a session of their own,
stopped as a group afterwards.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka_helpers import NameFactory
from nemo_gym_helpers import free_ports, nemo_gym_python

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "nemo_gym_compat.md"
MARKER = "<!-- tested-block: nemo-gym-walkthrough"
AGENTS = {"example_single_tool_call_simple_agent", "example_multi_step_simple_agent"}
OUTPUTS = ("results/ng_outputs.jsonl", "results/ng_staged.jsonl")
_STALL_S = 240.0  # Ray's start on a loaded 2-core box writes nothing for ~30-60 s
_POLL_S = 0.5
_STOP_GRACE_S = 20.0

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(1200)]


def documented_block(text: str) -> str:
    """The fenced bash block right after the marker comment."""
    found = re.search(re.escape(MARKER) + r"[^\n]*\n```bash\n(.*?)\n```", text, re.DOTALL)
    assert found, f"{DOC}: no ```bash block after '{MARKER}'"
    return found.group(1)


def test_the_block_is_found_and_uses_what_the_test_substitutes() -> None:
    block = documented_block(DOC.read_text("utf-8"))
    for name in ("HEAD_PORT", "MODEL_PORT", "PORT_LOW", "PORT_HIGH", "NEMO_GYM_VENV"):
        assert f"${{{name}:-" in block, name
    assert "+uv_venv_dir=" in block
    assert "+skip_venv_if_present=true" in block
    for agent in AGENTS:
        assert f"--agent {agent}" in block, agent
    with pytest.raises(AssertionError, match="no ```bash block"):
        documented_block("# a document without the block\n")


def test_the_shipped_input_is_nemo_gyms_examples_with_agent_ref() -> None:
    python = nemo_gym_python()
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    expected = []
    for name in ("example_single_tool_call", "example_multi_step"):
        data = Path(site) / "resources_servers" / name / "data" / "example.jsonl"
        for row in _rows(data):
            row["agent_ref"] = {"type": "responses_api_agents", "name": f"{name}_simple_agent"}
            expected.append(row)
    assert _rows(ROOT / "examples" / "nemo_gym" / "multiverifier.jsonl") == expected


def _environment(kafka_bootstrap: str, prefix: str, venv: Path) -> dict[str, str]:
    head, model = free_ports(2)
    low = random.randrange(21000, 29000, 50)  # below Linux's ephemeral range;
    # ng_run binds each port it draws to check that it is free
    env = {k: v for k, v in os.environ.items() if not k.startswith("GYMSTREAM_MODEL_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        NEMO_GYM_VENV=str(venv),
        HEAD_PORT=str(head),
        MODEL_PORT=str(model),
        PORT_LOW=str(low),
        PORT_HIGH=str(low + 999),
        GYMSTREAM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        GYMSTREAM_TOPIC_PREFIX=prefix,
        GYMSTREAM_PROGRESS_INTERVAL_S="2",
    )
    return env


def _progress(folder: Path) -> int:
    """Bytes written so far by the block's commands (logs and outputs)."""
    files = [*folder.glob("*.log"), *folder.glob("results/*")]
    return sum(f.stat().st_size for f in files if f.is_file())


def _tails(folder: Path) -> str:
    parts = []
    for log in sorted(folder.glob("*.log")):
        lines = log.read_text("utf-8", errors="replace").splitlines()[-25:]
        parts.append(f"--- {log.name} ---\n" + "\n".join(lines))
    return "\n".join(parts)


def _run_until_done(proc: subprocess.Popen[bytes], folder: Path) -> int:
    """Wait for the block to exit while it makes progress; fail on a stall."""
    seen, last_change = -1, time.monotonic()
    while proc.poll() is None:
        now_bytes = _progress(folder)
        if now_bytes != seen:
            seen, last_change = now_bytes, time.monotonic()
        elif time.monotonic() - last_change > _STALL_S:
            pytest.fail(f"the block made no progress for {_STALL_S:.0f} s\n{_tails(folder)}")
        time.sleep(_POLL_S)
    return proc.returncode


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop everything the block left running (ng_run's servers and Ray share its session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + _STOP_GRACE_S
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(_POLL_S)


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def test_the_walkthrough_runs_as_written_against_ng_run(
    kafka_bootstrap: str, tmp_path: Path, unique_name: NameFactory
) -> None:
    venv = nemo_gym_python().parent.parent
    block = documented_block(DOC.read_text("utf-8"))
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the block's relative input path
    script = tmp_path / "walkthrough.sh"
    script.write_text(block + "\n", "utf-8")
    prefix = unique_name("ngwalk")
    with (tmp_path / "block.log").open("wb") as log:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=tmp_path,
            env=_environment(kafka_bootstrap, prefix, venv),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = _run_until_done(proc, tmp_path)
        finally:
            _stop_group(proc)
    assert code == 0, f"the block exited {code}\n{_tails(tmp_path)}"
    for output in OUTPUTS:
        rows = _rows(tmp_path / output)
        assert len(rows) == 10, output
        agents = Counter(str(row["agent_ref"]["name"]) for row in rows)  # type: ignore[index]
        assert agents == dict.fromkeys(AGENTS, 5), (output, agents)
        assert all(isinstance(row["reward"], float) for row in rows), output
