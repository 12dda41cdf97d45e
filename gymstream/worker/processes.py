"""Worker processes for ``collect --worker-processes N``: one Python process per core.

A worker process is CPU-bound at roughly 1,300 rollouts/s on one core (docs/performance.md); in
one process, ``collect`` shares that core with its producer and sink. Spawning ``gymstream
worker`` processes runs exactly the code of the separate command, spread over the cores. They
inherit the environment (Kafka security settings, the model API key), get the merged agent
configuration as a YAML file, and are stopped with SIGTERM (settle, commit, leave the group).

They die with their parent, however it ends: each has a pipe as standard input that only the
parent holds open, and stops (settles, commits, leaves) when it closes (``--stop-on-stdin-eof``),
which the kernel does when the parent dies, even by kill -9. Nothing is left on disk either: the
configuration and the logs are unlinked temporary files, which the children reach through an
inherited descriptor (``/dev/fd/N``), so there is no directory to clean after a crash.

Metrics: with ``metrics_port`` P, the children serve /metrics and /healthz on P, P+1, ... in the
order they start (``collect --metrics-port`` passes its own port + 1: the parent keeps its port
for the sink); each child is one Prometheus target.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import IO, Any

import yaml

from gymstream.errors import GymstreamError
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.settings import KafkaSettings

__all__ = ["WorkerProcesses"]

_OPTION = {"base_url": "--model-base-url", "name": "--model-name", "api": "--model-api"}
_FLAG = {"return_token_id_information": ("--model-return-token-ids", "--no-model-return-token-ids")}


class WorkerProcesses:
    """``gymstream worker`` processes started per agent; ``check`` fails if one died."""

    def __init__(
        self,
        kafka: KafkaSettings,
        layout: TopicLayout,
        config: GymConfig,
        *,
        per_agent: int,
        concurrency: int | None,
        model_overrides: Mapping[str, Any] | None,
        verbose: bool = False,
        metrics_port: int | None = None,
    ) -> None:
        self._config = tempfile.TemporaryFile()  # noqa: SIM115  # closed in stop()
        self._config.write(yaml.safe_dump(config.model_dump(exclude_none=True)).encode())
        self._config.flush()
        self._config.seek(0)  # where /dev/fd/N shares the offset (macOS), the children read from 0
        config_path = f"/dev/fd/{self._config.fileno()}"
        self._common = ["--bootstrap", kafka.bootstrap, "--topic-prefix", layout.prefix]
        self._common += ["--namespace", layout.namespace]  # the run's scope: docs/scopes.md
        # no progress lines: the end of a child's log is what a failure shows
        self._common += ["--config", config_path, "--stop-on-stdin-eof", "--no-progress"]
        for key, value in (model_overrides or {}).items():
            if value is not None and key in _OPTION:
                self._common += [_OPTION[key], str(value)]
            elif value is not None and key in _FLAG:
                self._common.append(_FLAG[key][0] if value else _FLAG[key][1])
        if concurrency is not None:
            self._common += ["--concurrency", str(concurrency)]
        if verbose:
            self._common.append("--verbose")
        self._per_agent = per_agent
        self._metrics_port = metrics_port  # the next child's
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._logs: dict[tuple[str, int], IO[bytes]] = {}

    def start(self, agent: str) -> None:
        command = [sys.executable, "-m", "gymstream.cli.main", "worker", "--agent", agent]
        procs = self.procs[agent] = []
        for i in range(self._per_agent):
            log = self._logs[agent, i] = tempfile.TemporaryFile()  # noqa: SIM115  # see stop()
            own: list[str] = []
            if self._metrics_port is not None:
                own = ["--metrics-port", str(self._metrics_port)]
                self._metrics_port += 1
            procs.append(
                subprocess.Popen(  # our own command, arguments from our settings
                    [*command, *self._common, *own],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.PIPE,  # never written: its end is the parent's death
                    pass_fds=(self._config.fileno(),),
                )
            )

    def check(self) -> None:
        """Raise GymstreamError (with the end of its log) if a worker process has exited."""
        for agent, procs in self.procs.items():
            for i, proc in enumerate(procs):
                code = proc.poll()
                if code is not None:
                    log = self._logs[agent, i]
                    log.seek(0)
                    tail = log.read().decode("utf-8", "replace").strip().splitlines()[-5:]
                    raise GymstreamError(
                        f"worker process {i} for {agent} exited with code {code}: "
                        + " | ".join(tail)
                    )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every worker, wait for them to settle and leave; SIGKILL the stragglers."""
        every = [p for procs in self.procs.values() for p in procs]
        for proc in every:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in every:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
        for log in self._logs.values():
            log.close()
        self._config.close()
