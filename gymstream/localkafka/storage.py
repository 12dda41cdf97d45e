"""Files of a local cluster's data directory: paths, JSON state, log tails, storage formatting.

See cluster.py for the layout. Nothing here starts a broker.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gymstream.errors import KafkaSetupError
from gymstream.localkafka import process

__all__ = [
    "LAYOUT",
    "STATE",
    "format_nodes",
    "log_sizes",
    "log_tail",
    "marker",
    "node_dir",
    "read_json",
    "recorded_cluster_id",
    "write_json",
]

STATE = "state.json"
LAYOUT = "cluster.json"
LOG_TAIL_LINES = 20


def node_dir(data_dir: Path, node_id: int) -> Path:
    return data_dir / f"node-{node_id}"


def marker(data_dir: Path, node_id: int) -> str:
    """What a node's command line must contain for its pid to be trusted (its properties path)."""
    return str(node_dir(data_dir, node_id) / "server.properties")


def read_json(path: Path) -> dict[str, object] | None:
    try:
        value = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise KafkaSetupError(f"{path} is unreadable ({exc}): delete it and start again") from exc
    return value if isinstance(value, dict) else None


def write_json(path: Path, value: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True), "utf-8")
    tmp.replace(path)


LOG_FILES = ("server.log", "console.log")


def log_sizes(data_dir: Path, node_id: int) -> dict[str, int]:
    """Current size of each log of a node, so an error can show only what one start wrote."""
    sizes: dict[str, int] = {}
    for name in LOG_FILES:
        try:
            sizes[name] = (node_dir(data_dir, node_id) / name).stat().st_size
        except OSError:
            sizes[name] = 0
    return sizes


def log_tail(
    data_dir: Path, node_id: int, since: dict[str, int] | None = None, lines: int = LOG_TAIL_LINES
) -> str:
    """The last lines a node wrote to its broker log and console (after ``since``, if given)."""
    parts: list[str] = []
    for name in LOG_FILES:
        path = node_dir(data_dir, node_id) / name
        try:
            with path.open("rb") as handle:
                start = (since or {}).get(name, 0)
                handle.seek(start if start <= path.stat().st_size else 0)  # rolled over: all
                text = handle.read().decode("utf-8", errors="replace").rstrip()
        except OSError:
            continue
        if text:
            tail = "\n".join("  " + line for line in text.splitlines()[-lines:])
            parts.append(f"last lines of {path}:\n{tail}")
    return "\n".join(parts) if parts else f"(nothing in the logs of {node_dir(data_dir, node_id)})"


def recorded_cluster_id(data_dir: Path, brokers: int) -> str | None:
    """The cluster id recorded in ``data_dir`` (None if fresh); refuses a different cluster size."""
    layout = read_json(data_dir / LAYOUT)
    if layout is None:
        return None
    stored = layout.get("brokers")
    if stored != brokers:
        raise KafkaSetupError(
            f"{data_dir} holds a {stored}-broker cluster: start it with --brokers {stored}, "
            f"or use another --data-dir (or delete {data_dir}) for {brokers} brokers"
        )
    return str(layout["cluster_id"])


def format_nodes(
    data_dir: Path,
    node_ids: list[int],
    cluster_id: str,
    java: str,
    libs: Path,
    timeout_s: float,
    extra_arguments: list[str] | None = None,
) -> None:
    """Run kafka-storage format for nodes without meta.properties (in parallel; ~1 s each).

    ``extra_arguments`` go to every format command (e.g. ``--add-scram`` for the SCRAM user).
    """
    todo = [
        n for n in node_ids if not (node_dir(data_dir, n) / "data" / "meta.properties").exists()
    ]
    running: dict[int, subprocess.Popen[str]] = {}
    for node_id in todo:
        folder = node_dir(data_dir, node_id)
        command = [
            java,
            "-Xmx256m",
            *process.JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={folder}",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(folder / "server.properties"),
            *(extra_arguments or []),
        ]
        running[node_id] = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for node_id, proc in running.items():
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise KafkaSetupError(
                f"formatting node {node_id}'s storage took over {timeout_s:.0f} s"
            ) from exc
        if proc.returncode != 0:
            tail = "\n".join("  " + line for line in output.strip().splitlines()[-LOG_TAIL_LINES:])
            raise KafkaSetupError(
                f"formatting node {node_id}'s storage failed (exit {proc.returncode}): "
                f"delete {node_dir(data_dir, node_id)} if it holds nothing you need\n{tail}"
            )
