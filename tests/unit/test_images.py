"""The runtime image and the compose file: checked without a Docker daemon.

docker-compose.yaml is validated against the Compose Specification's JSON schema (vendored in
tests/data, see its README); the Dockerfile and the runtime lock are read for what the image
promises: runtime dependencies only, a non-root user, a healthcheck.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text("utf-8"))
DEV_ONLY = ("pytest", "mypy", "ruff", "testcontainers", "openai", "import-linter", "jsonschema")


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yaml").read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert _errors(_compose()) == []


def test_the_schema_check_catches_a_wrong_compose_file() -> None:
    broken = copy.deepcopy(_compose())
    broken["services"]["sink"]["restart_when"] = "always"  # not a compose key
    broken["services"]["kafka"]["healthcheck"]["retries"] = [6]
    problems = _errors(broken)
    assert any("restart_when" in p for p in problems), problems
    assert any("retries" in p for p in problems), problems


def test_run_id_and_model_settings_come_from_the_environment() -> None:
    services = _compose()["services"]
    sink = " ".join(services["sink"]["command"])
    assert "${GYMSTREAM_RUN_ID:-compose}" in sink
    assert "--run-id compose" not in sink
    produce = services["produce"]
    assert produce["environment"]["GYMSTREAM_RUN_ID"] == "${GYMSTREAM_RUN_ID:-compose}"
    assert "$${GYMSTREAM_RUN_ID}" in " ".join(produce["command"])
    for name in ("worker-single-tool-call", "worker-multi-step"):
        env = services[name]["environment"]
        for key in ("BASE_URL", "NAME", "API_KEY", "API"):
            assert env[f"GYMSTREAM_MODEL_{key}"].startswith(f"${{GYMSTREAM_MODEL_{key}"), name


def _lock_names(path: Path) -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.\-]+)==", path.read_text("utf-8"), re.MULTILINE))


def test_the_runtime_lock_has_no_dev_dependency_and_agrees_with_the_dev_lock() -> None:
    runtime = _lock_names(ROOT / "requirements.lock")
    dev = _lock_names(ROOT / "requirements-dev.lock")
    assert {"aiokafka", "msgspec", "pydantic", "cramjam"} <= runtime
    assert runtime.isdisjoint(DEV_ONLY), runtime & set(DEV_ONLY)
    assert set(DEV_ONLY) <= dev
    assert "faststream" not in dev
    pins = dict(
        re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    )
    dev_pins = dict(
        re.findall(
            r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements-dev.lock").read_text(), re.M
        )
    )
    assert {k: v for k, v in pins.items() if dev_pins.get(k) != v} == {}


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text("utf-8")


def test_the_image_installs_the_runtime_lock_only(dockerfile: str) -> None:
    assert "requirements.lock" in dockerfile
    assert "requirements-dev.lock" not in dockerfile
    assert "[dev]" not in dockerfile


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck(dockerfile: str) -> None:
    final_stage = dockerfile.rsplit("\nFROM ", 1)[-1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, re.MULTILINE)
    assert users, "no USER in the final stage"
    assert users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK\s", final_stage, re.MULTILINE)


def test_the_healthchecks_ask_healthz_on_the_metrics_port(dockerfile: str) -> None:
    final_stage = dockerfile.rsplit("\nFROM ", 1)[-1]
    check = final_stage.split("HEALTHCHECK", 1)[1]
    assert "/healthz" in check
    assert "GYMSTREAM_METRICS_PORT" in check
    assert re.search(r"GYMSTREAM_METRICS_PORT=9464", final_stage)
    services = _compose()["services"]
    for name in ("worker-single-tool-call", "worker-multi-step", "sink"):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "127.0.0.1:9464/healthz" in test, name


async def test_the_image_healthcheck_command_follows_healthz(dockerfile: str) -> None:
    """The HEALTHCHECK's command, run as Docker would, against a real metrics server."""
    import asyncio
    import os
    import shlex
    import sys

    from gymstream.observe.metrics import Metrics
    from gymstream.observe.server import serve_metrics

    command = shlex.split(dockerfile.split("HEALTHCHECK", 1)[1].split(" CMD ", 1)[1].strip())
    assert command[0] == "python"
    metrics = Metrics()
    async with serve_metrics(metrics, 0, "127.0.0.1") as port:

        async def exit_code() -> int:
            env = {**os.environ, "GYMSTREAM_METRICS_PORT": str(port)}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *command[1:], env=env, stderr=asyncio.subprocess.DEVNULL
            )
            return await proc.wait()

        assert await exit_code() != 0  # nothing registered: 503
        metrics.readiness.add("sink", lambda: None)
        assert await exit_code() == 0
        metrics.readiness.add("sink", lambda: "no partition assigned")
        assert await exit_code() != 0
