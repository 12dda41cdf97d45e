"""What a status query of a local cluster returns: per node its pid, ports, log, whether it runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClusterStatus", "NodeStatus"]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as seen from its data directory (``port`` is its client port)."""

    node_id: int
    pid: int | None
    port: int
    controller_port: int
    running: bool
    log: Path


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What ``status(data_dir)`` found; ``bootstrap`` is None when nothing was started."""

    data_dir: Path
    bootstrap: str | None
    nodes: tuple[NodeStatus, ...]

    @property
    def running(self) -> bool:
        """True if the directory has a cluster and every node of it runs."""
        return bool(self.nodes) and all(n.running for n in self.nodes)
