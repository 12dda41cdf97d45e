"""Worker processes for ``collect --worker-processes N``: one Python process per core.

A worker process is CPU-bound at roughly 1,300 rollouts/s on one core (docs/performance.md); in
one process, ``collect`` shares that core with its producer and sink. Spawning ``gymstream
worker`` processes runs exactly the code of the separate command, spread over the cores. They
inherit the environment (Kafka security settings, the model API key), get the merged agent
configuration as a YAML file, and are stopped with SIGTERM (settle, commit, leave the group).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gymstream.config import GymConfig
from gymstream.errors import GymstreamError
from gymstream.kafka.topics import TopicLayout
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
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="gymstream-workers-")
        self._config = Path(self._dir.name) / "config.yaml"
        self._config.write_text(yaml.safe_dump(config.model_dump(exclude_none=True)), "utf-8")
        self._common = ["--bootstrap", kafka.bootstrap, "--topic-prefix", layout.prefix]
        self._common += ["--config", str(self._config)]
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
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {}

    def start(self, agent: str) -> None:
        command = [sys.executable, "-m", "gymstream.cli.main", "worker", "--agent", agent]
        logs = Path(self._dir.name)
        self.procs[agent] = [
            subprocess.Popen(  # our own command, arguments from our settings
                [*command, *self._common],
                stdout=(logs / f"{agent}-{i}.log").open("wb"),
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            for i in range(self._per_agent)
        ]

    def check(self) -> None:
        """Raise GymstreamError (with the end of its log) if a worker process has exited."""
        for agent, procs in self.procs.items():
            for i, proc in enumerate(procs):
                code = proc.poll()
                if code is not None:
                    log = Path(self._dir.name) / f"{agent}-{i}.log"
                    tail = log.read_text("utf-8", "replace").strip().splitlines()[-5:]
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
        self._dir.cleanup()
