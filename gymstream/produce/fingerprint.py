"""What defines a run, as the run's manifest records it: a run id names one run, forever.

``run_definition`` is pure: the input file's content hash, ``--limit``, the repeats, the seeds,
the routing and request overrides, and per agent the configuration that shapes its rollouts
(environment, servers by instance, max steps, verification, the model entry it names). What
only tunes *how fast* (concurrency) or *where* (server addresses, which change whenever
``ng_run`` restarts) is left out, so a resume after a restart is still the same run; the
model's endpoint is left out too: which model produced a row is recorded on the row.

``differences`` names what changed between two definitions, for the one ``error:`` line that
refuses a reused run id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.produce.plan import ProduceOptions

__all__ = ["differences", "file_digest", "fingerprint", "run_definition"]

_LABELS = {
    "input": "the input rows",
    "limit": "--limit",
    "repeats": "the repeats",
    "rollout_seed": "--rollout-seed",
    "add_seed": "--num-repeats-add-seed",
    "overrides": "--responses-create-params",
    "agent_map": "the agent routing (--agent-map, --agent-name)",
    "agents": "the agents the rows name",
}


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes (read in 1 MiB blocks), as ``sha256:<hex>``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _short(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()[:16]


def _agent_definition(config: GymConfig, agent: str) -> str:
    """A short hash of what in the agent's configuration shapes its rollouts."""
    found = config.agent(agent)
    shape = found.model_dump(exclude={"concurrency"})
    for server in ("resources_server", "remote_agent"):
        if shape.get(server):
            shape[server] = {k: v for k, v in shape[server].items() if k != "url"}
    model = config.models.get(found.model)
    if model is not None:  # what the model is asked, not where it is
        shape["model_options"] = model.model_dump(
            include={"name", "api", "return_token_id_information"}
        )
    return _short(shape)


def run_definition(
    options: ProduceOptions, config: GymConfig, agents: Collection[str], input_digest: str
) -> dict[str, str]:
    """What defines the run: component -> value (short hashes where the value is large)."""
    definition = {
        "input": input_digest,
        "limit": str(options.limit or ""),
        "repeats": _canonical(options.num_repeats),
        "rollout_seed": "" if options.rollout_seed is None else str(options.rollout_seed),
        "add_seed": str(options.num_repeats_add_seed).lower(),
        "overrides": _short(dict(options.overrides)) if options.overrides else "",
        "agent_map": _canonical({**options.agent_map, "_agent_name": options.default_agent or ""}),
        "agents": ",".join(sorted(agents)),
    }
    for agent in sorted(agents):
        definition[f"agent:{agent}"] = _agent_definition(config, agent)
    return definition


def fingerprint(definition: Mapping[str, str]) -> str:
    """One hash of a whole definition (what a manifest shows, and what ``status`` may print)."""
    return _short(dict(definition))


def differences(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """What differs between the run's recorded definition and this one, in words."""
    found = []
    for key in sorted(set(recorded) | set(now)):
        before, after = recorded.get(key, ""), now.get(key, "")
        if before == after:
            continue
        if key.startswith("agent:"):
            if not before or not after:
                continue  # an agent added or dropped: said by "agents"
            found.append(f"the configuration of agent {key.removeprefix('agent:')}")
        elif key in ("input", "overrides"):
            found.append(_LABELS[key])
        else:
            found.append(f"{_LABELS.get(key, key)} ({before or 'none'} -> {after or 'none'})")
    return found
