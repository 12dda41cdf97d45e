"""The two collectors of ``bench.nemo_gym_vs`` over one set of NeMo Gym 0.7.0 servers.

``Shared`` starts what both sides use: gymstream's scripted model (``bench.counted_model``) and
NeMo Gym's own servers from its venv (policy model ``openai_model`` -> the scripted model, the
``example_single_tool_call`` and ``example_multi_step`` resources servers and their
``simple_agent`` instances), standalone as the compatibility tests start them
(``tests/fixtures/nemo_gym_servers.py``: NeMo Gym's merged YAML, ``python app.py``, no
Ray). Every NeMo Gym server runs with ``bench/ng_counting`` on its path, so
``GET /_bench_counts`` tells the requests it has answered by path.

- ``run_nemo_gym``: NeMo Gym's collector (``nemo_gym.cli.eval.collect_rollouts``, what
  ``ng_collect_rollouts`` / ``gym eval run --no-serve`` run) in its venv, configured as its
  servers are (``NEMO_GYM_CONFIG_DICT``), driving the ``simple_agent``: spawn to exit;
- ``run_gymstream``: ``gymstream collect --config <NeMo Gym's YAML files>,<the port pins>``
  through Kafka, calling the scripted model directly and the same resources server over HTTP.
Each gives the whole-command rate, the steady rate (middle 80% of rows by their arrival in the
output file), CPU seconds per process group and the HTTP requests each server answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.analysis import OutputWatcher, middle_rate
from bench.counted_model import CountedModel
from bench.pipeline import collect_argv
from bench.procs import ROOT, Child, cpu_s, self_cpu_s, system_busy_s

sys.path.insert(0, str(ROOT / "tests"))  # the NeMo Gym harness of the compatibility tests
from fixtures.nemo_gym_servers import (
    EXAMPLE_CONFIGS,
    EXAMPLE_INSTANCES,
    MS_AGENT,
    MS_RESOURCES,
    STC_AGENT,
    STC_RESOURCES,
    Instance,
    NemoGymServers,
    run_nemo_gym_servers,
)

__all__ = [
    "ENVIRONMENTS",
    "Shared",
    "nemo_gym_startup_cpu_s",
    "run_gymstream",
    "run_nemo_gym",
    "shared_servers",
]

# environment (its folder in NeMo Gym) -> (resources server, simple_agent, environment server)
ENVIRONMENTS = {
    "example_single_tool_call": (
        STC_RESOURCES,
        STC_AGENT,
        "example_single_tool_call_environment_server",
    ),
    "example_multi_step": (MS_RESOURCES, MS_AGENT, "example_multi_step_environment_server"),
}

MODEL_SERVER = "policy_model"
START_ATTEMPTS = 3
RUN_TIMEOUT_S = 1800.0
_COLLECTOR = "from nemo_gym.cli.eval import collect_rollouts; collect_rollouts()"
_IMPORTS = "import nemo_gym.cli.eval, nemo_gym.rollout_collection"


@dataclass
class Shared:
    """The running servers and what the runs share (work dir, env, Kafka)."""

    servers: NemoGymServers
    model: CountedModel
    work: Path
    env: dict[str, str]
    bootstrap: str
    broker_pid: int | None

    def counts(self, name: str) -> dict[str, int]:
        """Requests a NeMo Gym server answered so far, by path."""
        url = f"{self.servers.url(name)}/_bench_counts"  # http://127.0.0.1:<port>
        with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310
            found: dict[str, int] = json.loads(r.read())
        return found

    def pid(self, name: str) -> int:
        return self.servers.processes[name].pid

    def input(self, environment: str, n: int) -> Path:
        """NeMo Gym's own example rows of ``environment``, cycled to ``n``, each with an ``id``."""
        path = self.work / f"{environment}-{n}.jsonl"
        if not path.exists():
            data = self.servers.site_packages / "resources_servers" / environment / "data"
            rows = [json.loads(x) for x in (data / "example.jsonl").read_text().splitlines() if x]
            agent = ENVIRONMENTS[environment][1]
            with path.open("w") as handle:
                for i in range(n):
                    row = {**rows[i % len(rows)], "id": i}
                    row["agent_ref"] = {"type": "responses_api_agents", "name": agent}
                    handle.write(json.dumps(row) + "\n")
        return path

    def config_files(self) -> str:
        """NeMo Gym's YAML files as shipped, then the pins (host, port, policy_*) merged last."""
        files = [str(self.servers.site_packages / f) for f in EXAMPLE_CONFIGS]
        return ",".join([*files, str(self.servers.log_dir / "pins.yaml")])


@contextlib.contextmanager
def _counting(env: dict[str, str]) -> Iterator[None]:
    """This process's environment while NeMo Gym's servers are spawned (they inherit it)."""
    counting = {
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "bench" / "ng_counting"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "GYMSTREAM_BENCH_COUNT_HTTP": "1",
        "GYMSTREAM_BENCH_NO_RAY": "1",
        "PYTHONPYCACHEPREFIX": env["PYTHONPYCACHEPREFIX"],
    }
    saved = {k: os.environ.get(k) for k in counting}
    os.environ.update(counting)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _kill_leftovers(env: dict[str, str]) -> None:
    """Stop what a stopped or failed environment server left behind (its Ray's processes).

    They are found by this run's private ``PYTHONPYCACHEPREFIX`` in their environment, which
    every process the bench started inherits, and are ended by pid."""
    marker = f"PYTHONPYCACHEPREFIX={env['PYTHONPYCACHEPREFIX']}".encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        with contextlib.suppress(OSError):
            if pid != os.getpid() and marker in environ.read_bytes().split(b"\0"):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def shared_servers(
    work: Path, env: dict[str, str], bootstrap: str, broker_pid: int | None, environments: list[str]
) -> Iterator[Shared]:
    """The scripted model and NeMo Gym's servers, with the environment servers of
    ``environments``: NeMo Gym 0.7.0's collector sends every row to the environment server that
    fronts its agent (the examples' YAML files declare a ``legacy_agent``, a relay to the agent's
    ``/run``); only those the run needs are started, without the Ray instance NeMo Gym would
    start in each (``bench/ng_counting``). A failed start is tried again (``START_ATTEMPTS``)."""
    instances = (
        *EXAMPLE_INSTANCES,
        *(
            Instance(ENVIRONMENTS[e][2], "environment_servers", "legacy_agent")
            for e in environments
        ),
    )
    model = CountedModel(env, work / "logs" / "model.log")
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            stack = contextlib.ExitStack()
            try:
                with _counting(env):
                    servers = stack.enter_context(
                        run_nemo_gym_servers(
                            instances,
                            EXAMPLE_CONFIGS,
                            policy_base_url=model.url,
                            log_dir=work / f"nemo_gym-{attempt}",
                        )
                    )
                break
            except pytest.fail.Exception as exc:
                stack.close()
                _kill_leftovers(env)
                if attempt == START_ATTEMPTS:
                    raise RuntimeError(str(exc)) from None
                first = str(exc).strip().splitlines()[0]
                print(f"NeMo Gym's servers did not start ({first}); again", file=sys.stderr)
        with stack:
            yield Shared(servers, model, work, env, bootstrap, broker_pid)
        _kill_leftovers(env)
    finally:
        model.stop()


def nemo_gym_startup_cpu_s(shared: Shared, runs: int = 2) -> float:
    """CPU seconds of importing NeMo Gym's collector (the least of ``runs`` starts)."""
    found = []
    for _ in range(runs):
        child = Child(
            [str(shared.servers.python), "-c", _IMPORTS],
            env=shared.env,
            log=shared.work / "logs" / "ng-start.log",
        )
        usage = child.wait(300, "NeMo Gym collector imports")
        child.check(usage, "NeMo Gym collector imports")
        found.append(usage.cpu_s)
    return min(found)


def _collector_config(shared: Shared, agent: str, source: Path, output: Path, c: int) -> str:
    config = yaml.safe_load(shared.servers.config_yaml)
    config.update(
        agent_name=agent,
        input_jsonl_fpath=str(source),
        output_jsonl_fpath=str(output),
        num_samples_in_parallel=c,
    )
    return yaml.safe_dump(config)


def _tree(pid: int) -> dict[int, float]:
    """CPU seconds so far of ``pid`` and every live descendant (an environment server's Ray)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            found[p] = cpu_s(p)
        todo += [child for child, parent in parents.items() if parent == p]
    return found


class _Window:
    """CPU of named processes, all HTTP counts and the machine's busy CPU over one run."""

    def __init__(self, shared: Shared, pids: dict[str, int]) -> None:
        self.shared, self.pids = shared, pids
        self.cpu0 = {k: _tree(p) for k, p in pids.items()}
        self.http0 = self._http()
        self.bench0, self.machine0 = self_cpu_s(), system_busy_s()

    def _http(self) -> dict[str, dict[str, int]]:
        found = {name: self.shared.counts(name) for name in self.shared.servers.processes}
        found["fake_model"] = self.shared.model.counts()
        return found

    def close(self) -> dict[str, Any]:
        cpu: dict[str, float] = {}
        for k, p in self.pids.items():  # a process, and apart what it started (e.g. Ray's)
            delta = {q: t - self.cpu0[k].get(q, 0.0) for q, t in _tree(p).items()}
            cpu[k] = delta.pop(p, 0.0)
            if delta:
                cpu[f"{k}_children"] = sum(delta.values())
        cpu["bench"] = self_cpu_s() - self.bench0
        http1 = self._http()
        http = {
            server: {
                path: n - self.http0.get(server, {}).get(path, 0)
                for path, n in paths.items()
                if n - self.http0.get(server, {}).get(path, 0)
            }
            for server, paths in http1.items()
        }
        http = {server: paths for server, paths in http.items() if paths}
        return {"cpu_s": cpu, "http": http, "machine_busy_s": system_busy_s() - self.machine0}


def _shared_pids(shared: Shared, environment: str) -> dict[str, int]:
    resources = ENVIRONMENTS[environment][0]
    return {"resources_server": shared.pid(resources), "fake_model": shared.model.pid}


def _finish(
    child: Child, usage_what: str, window: _Window, watcher: OutputWatcher, output: Path, n: int
) -> dict[str, Any]:
    usage = child.wait(RUN_TIMEOUT_S, usage_what)
    child.check(usage, usage_what)
    watcher.stop()
    measured = window.close()
    measured["cpu_s"]["collector"] = usage.cpu_s
    rows = [json.loads(x) for x in output.read_bytes().split(b"\n") if x.strip()]
    return {
        "n": n,
        "wall_s": usage.wall_s,
        "rate_whole": n / usage.wall_s,
        "rate_steady": middle_rate(watcher.arrivals()),
        "rows": len(rows),
        "rewards": {
            f"{r.get('_ng_task_index')}:{r.get('_ng_rollout_index')}": r.get("reward") for r in rows
        },
        "peak_rss_mib": usage.peak_rss_mib,
        "loadavg": os.getloadavg(),
        **measured,
    }


def run_nemo_gym(shared: Shared, environment: str, n: int, concurrency: int) -> dict[str, Any]:
    """NeMo Gym's collector -> simple_agent -> openai_model -> scripted model; resources server."""
    _, agent, environment_server = ENVIRONMENTS[environment]
    run_dir = shared.work / f"ng-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    output = run_dir / "rollouts.jsonl"
    config = _collector_config(shared, agent, shared.input(environment, n), output, concurrency)
    pids = {
        **_shared_pids(shared, environment),
        "environment_server": shared.pid(environment_server),
        "agent_server": shared.pid(agent),
        "model_server": shared.pid(MODEL_SERVER),
    }
    window = _Window(shared, pids)
    watcher = OutputWatcher(output).start()
    child = Child(
        [str(shared.servers.python), "-c", _COLLECTOR],
        env={**shared.env, "NEMO_GYM_CONFIG_DICT": config},
        log=run_dir / "collector.log",
    )
    run = _finish(child, "NeMo Gym's collector", window, watcher, output, n)
    return {"side": "nemo_gym", **run}


def run_gymstream(shared: Shared, environment: str, n: int, concurrency: int) -> dict[str, Any]:
    """``gymstream collect --config <NeMo Gym's files>``: Kafka, the model, the resources server."""
    run_dir = shared.work / f"gs-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    output = run_dir / "rollouts.jsonl"
    pids = _shared_pids(shared, environment)
    if shared.broker_pid is not None:
        pids["broker"] = shared.broker_pid
    env = {
        **shared.env,
        "GYMSTREAM_KAFKA_BOOTSTRAP": shared.bootstrap,
        "GYMSTREAM_TOPIC_PREFIX": f"bench-ngvs-{uuid.uuid4().hex[:6]}",
    }
    window = _Window(shared, pids)
    watcher = OutputWatcher(output).start()
    child = Child(
        collect_argv(
            shared.input(environment, n),
            output,
            concurrency,
            "--config",
            shared.config_files(),
        ),
        env=env,
        log=run_dir / "collect.log",
    )
    run = _finish(child, "gymstream collect", window, watcher, output, n)
    return {"side": "gymstream", **run}
