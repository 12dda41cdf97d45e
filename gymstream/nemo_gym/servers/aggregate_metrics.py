"""``/aggregate_metrics`` per agent at the end of a run, as NeMo Gym's collector does.

When every agent of a run is served by a NeMo Gym server (a resources server under our agent
loop, or a remote agent), ``<stem>_aggregate_metrics.json`` is NeMo Gym's own: one entry per
agent with ``agent_ref``, ``_ng_environment_server`` (the environment server that fronts the
agent where the config names one, as NeMo Gym's; else the server asked), ``agent_metrics``,
``key_metrics``, ``group_level_metrics``, ``repeat_level_metrics`` (and ``perf_summary`` when
the server gives one), computed by that server from the run's rows as NeMo Gym's collector
wrote them (``output_row.nemo_gym_fields``: no task field gymstream kept, no ``_gs_*`` key)
and stripped as NeMo Gym strips them (no ``response`` but its ``usage`` /
``incomplete_details``, no request). A run with a
native agent keeps gymstream's own summary (``nemo.metrics.write_metrics``). An agent loop
with ``skip_verification`` asks no server: its entry is the empty metrics NeMo Gym's
``simple_agent`` answers then.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec

from gymstream.errors import ServerResponseError
from gymstream.nemo_gym.config.agents import GymConfig, ServerRef
from gymstream.nemo_gym.outputs.files import OutputPaths, iter_rows
from gymstream.nemo_gym.outputs.output_row import PARAMS, agent_of, nemo_gym_fields
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.settings import RetrySettings, ServerSettings

__all__ = ["server_metrics", "stripped", "write_entries", "write_server_metrics"]

# simple_agent's /aggregate_metrics with skip_verification: NeMo Gym's empty AggregateMetrics()
_SKIPPED_METRICS: dict[str, Any] = {
    "agent_metrics": {},
    "key_metrics": {},
    "group_level_metrics": [],
    "repeat_level_metrics": [],
}
_HEAVY = frozenset({PARAMS, "response", "ng_agent_observations", "ng_model_call_capture"})
_ENCODER = msgspec.json.Encoder()


def stripped(row: dict[str, Any]) -> dict[str, Any]:
    """A written row as NeMo Gym's collector sends it to ``/aggregate_metrics``."""
    entry = {
        k: v for k, v in nemo_gym_fields(row).items() if k not in _HEAVY and k != "_ng_trajectory"
    }
    response = row.get("response") or {}
    kept = {k: response[k] for k in ("usage", "incomplete_details") if response.get(k) is not None}
    if kept:
        entry["response"] = kept
    return entry


def _server_of(config: GymConfig, agent: str) -> ServerRef | None:
    declared = config.agents.get(agent)
    if declared is None:
        return None
    return declared.remote_agent or declared.resources_server


async def server_metrics(
    config: GymConfig, output: Path, *, settings: ServerSettings, retry: RetrySettings
) -> list[dict[str, Any]] | None:
    """NeMo Gym's aggregate-metrics entries for the rows in ``output``; None when a row's agent
    has no NeMo Gym server (or there are no rows). Raises ServerCallError / ServerResponseError.
    """
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in iter_rows(output):
        rows[agent_of(row)].append(stripped(row))
    targets: list[tuple[str, ServerRef, str]] = []
    for agent in rows:
        ref = _server_of(config, agent)
        if ref is None or ref.url is None:
            return None
        targets.append((agent, ref, ref.url))
    if not targets:
        return None
    entries: list[dict[str, Any]] = []
    for agent, ref, url in targets:
        if _skips_verification(config, agent):
            entries.append(_entry(config, agent, ref, _SKIPPED_METRICS))
            continue
        client = ServerClient(ref.instance, url, settings=settings, retry=retry)
        try:
            body = _ENCODER.encode({"verify_responses": rows[agent]})
            answer = await client.post("/aggregate_metrics", body)
        finally:
            await client.aclose()
        try:
            metrics = msgspec.json.decode(answer.text) if answer.status < 300 else None
        except msgspec.DecodeError:
            metrics = None
        if not isinstance(metrics, dict):
            raise ServerResponseError(
                f"NeMo Gym server '{ref.instance}' /aggregate_metrics answered HTTP "
                f"{answer.status}: {answer.text[:300]}",
                http_status=answer.status,
            )
        entries.append(_entry(config, agent, ref, metrics))
    return entries


def _entry(
    config: GymConfig, agent: str, ref: ServerRef, metrics: dict[str, Any]
) -> dict[str, Any]:
    declared = config.agents.get(agent)
    fronting = declared.environment_server if declared is not None else None
    server = fronting.instance if fronting is not None else ref.instance
    entry: dict[str, Any] = {"agent_ref": {"name": agent}, "_ng_environment_server": server}
    for key in ("agent_metrics", "key_metrics", "group_level_metrics", "repeat_level_metrics"):
        entry[key] = metrics.get(key)
    if metrics.get("perf_summary") is not None:
        entry["perf_summary"] = metrics["perf_summary"]
    return entry


def _skips_verification(config: GymConfig, agent: str) -> bool:
    declared = config.agents.get(agent)
    return declared is not None and declared.skip_verification and declared.remote_agent is None


async def write_server_metrics(
    config: GymConfig, output: OutputPaths, *, settings: ServerSettings, retry: RetrySettings
) -> bool:
    """At the end of a complete run (``collect`` and ``sink`` alike): NeMo Gym's own
    ``<stem>_aggregate_metrics.json`` when every agent of the rows is a NeMo Gym server's
    (``server_metrics``); False, the file untouched, otherwise."""
    entries = await server_metrics(config, output.output, settings=settings, retry=retry)
    if entries is None:
        return False
    write_entries(entries, output.metrics)
    return True


def write_entries(entries: list[dict[str, Any]], path: Path) -> None:
    """Write the entries as the aggregate-metrics file (indented JSON, as NeMo Gym's)."""
    path.write_bytes(msgspec.json.format(_ENCODER.encode(entries), indent=2))
