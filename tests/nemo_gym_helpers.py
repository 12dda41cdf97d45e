"""Real NeMo Gym 0.7.0 servers for the compatibility tests: the venv, the config, the processes.

NeMo Gym is a test dependency only (gymstream never imports it): ``scripts/nemo-gym-venv`` builds
its venv once (Python >= 3.13, cached under ~/.cache/gymstream, keyed on the version, a file
lock for parallel callers; ``scripts/setup`` runs it, so CI builds it at setup). Without a
Python >= 3.13 the tests that need NeMo Gym FAIL, saying what to install: they are not optional.

Servers run as ``ng_run`` would spawn them, without ng_run or Ray (recipe:
/work/shared/nemo-gym-protocol/README.md): ``python app.py`` in the server's folder inside the
venv's site-packages, with ``NEMO_GYM_CONFIG_DICT`` = the merged config YAML (made by NeMo Gym's
own ``get_global_config_dict`` from its shipped YAML files plus a small YAML that pins host and a
free port for every instance, and the policy model's URL) and ``NEMO_GYM_CONFIG_PATH`` = the
instance name. Every instance is ready when ``GET /health`` answers; logs go to files that a
startup failure quotes and that stay in pytest's basetemp afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

__all__ = [
    "EXAMPLE_CONFIGS",
    "EXAMPLE_INSTANCES",
    "MORE_CONFIGS",
    "MORE_INSTANCES",
    "MORE_SERVERS",
    "MS_AGENT",
    "MS_RESOURCES",
    "NEMO_GYM_VERSION",
    "SKIP_AGENT",
    "SKIP_VERIFICATION_YAML",
    "STC_AGENT",
    "STC_RESOURCES",
    "Instance",
    "NemoGymServers",
    "nemo_gym_merge",
    "nemo_gym_python",
    "run_nemo_gym_servers",
]

NEMO_GYM_VERSION = "0.7.0"
_REPO = Path(__file__).resolve().parent.parent
_VENV_SCRIPT = _REPO / "scripts" / "nemo-gym-venv"
_NO_PYTHON_313 = 3  # the script's exit status when no Python >= 3.13 is found
_START_TIMEOUT_S = 300.0  # 2.5-8 s of CPU each (its imports); far more when 2 cores are shared
_STOP_TIMEOUT_S = 10.0

# Runs inside the NeMo Gym venv (cwd = its site-packages, where the configs' relative paths
# point): NeMo Gym's own parser merges the config files, as `ng_run "+config_paths=[...]"` does.
_MERGE_SCRIPT = """
import sys
from omegaconf import OmegaConf
sys.argv = ["ng_run", "+config_paths=[" + ",".join(sys.argv[1:]) + "]"]
from nemo_gym.global_config import get_global_config_dict
print(OmegaConf.to_yaml(get_global_config_dict()))
"""


@dataclass(frozen=True)
class Instance:
    """One NeMo Gym server instance: its config name, server type and implementation folder."""

    name: str  # e.g. "example_single_tool_call_simple_agent"
    server_type: str  # resources_servers, responses_api_agents, responses_api_models
    implementation: str  # e.g. "simple_agent"; the folder <site-packages>/<type>/<impl>/


@dataclass
class NemoGymServers:
    """Running NeMo Gym servers: ``url(name)`` is an instance's base URL."""

    python: Path
    site_packages: Path
    log_dir: Path
    config_yaml: str
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text("utf-8", errors="replace") if path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def nemo_gym_python() -> Path:
    """The NeMo Gym venv's python, building the venv first if needed; fails without Python 3.13."""
    done = subprocess.run([str(_VENV_SCRIPT)], capture_output=True, text=True, check=False)
    if done.returncode == _NO_PYTHON_313:
        pytest.fail(done.stderr.strip(), pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"scripts/nemo-gym-venv failed (exit {done.returncode}) building NeMo Gym "
            f"{NEMO_GYM_VERSION}'s venv:\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    return Path(done.stdout.strip().splitlines()[-1])


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (bound, read, released together)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _merged_config(
    python: Path,
    site: Path,
    config_files: Sequence[str],
    pins: dict[str, object],
    log_dir: Path,
) -> str:
    pins_path = log_dir / "pins.yaml"
    pins_path.write_text(yaml.safe_dump(pins), "utf-8")
    return _run_merge(python, [*config_files, str(pins_path)], site)


def _run_merge(python: Path, config_files: Sequence[str], cwd: Path) -> str:
    """NeMo Gym's parser over ``config_files`` in ``cwd``: the merged config as YAML text."""
    done = subprocess.run(
        [str(python), "-c", _MERGE_SCRIPT, *config_files],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"NeMo Gym could not merge {config_files}:\n{done.stderr[-3000:]}")
    return done.stdout


def nemo_gym_merge(config_files: Sequence[str], cwd: Path) -> dict[str, Any]:
    """NeMo Gym's own merge of ``config_files`` (``ng_run "+config_paths=[...]"``) run in
    ``cwd``, as a dict; a failure quotes NeMo Gym's error."""
    merged: dict[str, Any] = yaml.safe_load(_run_merge(nemo_gym_python(), config_files, cwd))
    return merged


def _wait_healthy(servers: NemoGymServers, deadline: float) -> None:
    pending = set(servers.processes)
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for name in sorted(pending):
                process = servers.processes[name]
                if process.poll() is not None:
                    pytest.fail(
                        f"NeMo Gym server {name} exited ({process.returncode}) while starting; "
                        f"its log ({servers.log_dir / (name + '.log')}):\n{servers.log_tail(name)}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{servers.url(name)}/health").status_code == 200:
                        pending.discard(name)
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}:\n{servers.log_tail(n)}" for n in sorted(pending))
                pytest.fail(f"NeMo Gym servers not healthy in {_START_TIMEOUT_S} s:\n{tails}")
            if pending:
                time.sleep(0.2)  # polling /health: progress-driven, the deadline bounds it


def _stop(servers: NemoGymServers) -> None:
    for process in servers.processes.values():
        if process.poll() is None:
            process.terminate()
    for process in servers.processes.values():
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT_S)


@contextlib.contextmanager
def run_nemo_gym_servers(
    instances: Sequence[Instance],
    config_files: Sequence[str],
    *,
    policy_base_url: str,
    log_dir: Path,
    policy_model_name: str = "scripted",
) -> Iterator[NemoGymServers]:
    """Start ``instances`` (from NeMo Gym's ``config_files``, relative to its site-packages).

    Every instance gets host 127.0.0.1 and a free port; ``policy_base_url`` (an OpenAI-compatible
    ``.../v1``, e.g. gymstream's scripted model) is NeMo Gym's policy model endpoint. Yields when
    every instance answers ``/health``; stops them all at the end (logs stay in ``log_dir``).
    """
    python = nemo_gym_python()
    site = _site_packages(python)
    log_dir.mkdir(parents=True, exist_ok=True)
    *instance_ports, head_port = free_ports(len(instances) + 1)
    ports = dict(zip([i.name for i in instances], instance_ports, strict=True))
    pins: dict[str, object] = {
        "head_server": {"host": "127.0.0.1", "port": head_port},
        "policy_base_url": policy_base_url,
        "policy_api_key": "dummy-key",  # the scripted model checks no key
        "policy_model_name": policy_model_name,
    }
    for inst in instances:
        pins[inst.name] = {
            inst.server_type: {inst.implementation: {"host": "127.0.0.1", "port": ports[inst.name]}}
        }
    config_yaml = _merged_config(python, site, config_files, pins, log_dir)
    (log_dir / "merged_config.yaml").write_text(config_yaml, "utf-8")
    servers = NemoGymServers(python, site, log_dir, config_yaml, ports)
    env = {
        **os.environ,
        "NEMO_GYM_CONFIG_DICT": config_yaml,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    try:
        for inst in instances:
            with (log_dir / f"{inst.name}.log").open("wb") as log:
                servers.processes[inst.name] = subprocess.Popen(
                    [str(python), "app.py"],
                    cwd=site / inst.server_type / inst.implementation,
                    env={**env, "NEMO_GYM_CONFIG_PATH": inst.name},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        _wait_healthy(servers, time.monotonic() + _START_TIMEOUT_S)
        yield servers
    finally:
        _stop(servers)


# --- the server set of the two seed examples -----------------------------------------------

SKIP_VERIFICATION_YAML = _REPO / "tests" / "data" / "nemo_gym_skip_verification.yaml"
EXAMPLE_CONFIGS = (
    "responses_api_models/openai_model/configs/openai_model.yaml",
    "resources_servers/example_single_tool_call/configs/example_single_tool_call.yaml",
    "resources_servers/example_multi_step/configs/example_multi_step.yaml",
)
STC_RESOURCES = "example_single_tool_call"
STC_AGENT = "example_single_tool_call_simple_agent"
# a simple_agent with skip_verification: true, reward 0.25 (tests/compat/test_simple_agent_rules.py
# starts it alone, beside nemo_gym_examples' resources server and policy model)
SKIP_AGENT = "example_single_tool_call_skip_agent"
MS_RESOURCES = "example_multi_step_resources_server"
MS_AGENT = "example_multi_step_simple_agent"
EXAMPLE_INSTANCES = (
    Instance("policy_model", "responses_api_models", "openai_model"),
    Instance(STC_RESOURCES, "resources_servers", "example_single_tool_call"),
    Instance(STC_AGENT, "responses_api_agents", "simple_agent"),
    Instance(MS_RESOURCES, "resources_servers", "example_multi_step"),
    Instance(MS_AGENT, "responses_api_agents", "simple_agent"),
)


# --- servers gymstream has no port of: mcqa, the stateful example_session_state_mgmt ------------

MORE_CONFIGS = (
    "responses_api_models/openai_model/configs/openai_model.yaml",
    "resources_servers/mcqa/configs/mcqa.yaml",
    "resources_servers/example_session_state_mgmt/configs/example_session_state_mgmt.yaml",
)
MORE_SERVERS = {  # resources server folder -> (resources instance, simple_agent instance)
    "mcqa": ("mcqa", "mcqa_simple_agent"),
    "example_session_state_mgmt": (
        "example_session_state_mgmt_resources_server",
        "example_session_state_mgmt_simple_agent",
    ),
}
MORE_INSTANCES = (
    Instance("policy_model", "responses_api_models", "openai_model"),
    *(
        instance
        for folder, (resources, agent) in MORE_SERVERS.items()
        for instance in (
            Instance(resources, "resources_servers", folder),
            Instance(agent, "responses_api_agents", "simple_agent"),
        )
    ),
)
