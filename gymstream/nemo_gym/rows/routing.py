"""NeMo Gym's ``agent_map``: re-route rows to other agents before they are validated.

NeMo Gym 0.7.0 (``RolloutCollectionConfig.agent_map``): keys are the ``agent_ref.name`` found
in the data; the special key ``_default`` applies to every row with no entry of its own,
including rows with no ``agent_ref`` at all. Precedence: ``agent_map[<row's agent>]`` >
``agent_map._default`` > the row's ``agent_ref``. A re-routed row's ``agent_ref`` becomes
``{"name": <agent>}``, as NeMo Gym writes it. NeMo Gym's ``agent_name`` is shorthand for
``agent_map={_default: <agent_name>}`` (gymstream: ``--agent-map _default=NAME``, or
``--agent-name NAME --override-agents``); gymstream's plain ``--agent-name`` only fills rows that
have no ``agent_ref``. (NeMo Gym also keys by ``task_source``; gymstream has no task sources.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["DEFAULT_ROUTE", "parse_agent_map", "reroute"]

DEFAULT_ROUTE: Final = "_default"


def parse_agent_map(items: Iterable[str]) -> dict[str, str]:
    """``["old=new", "_default=x"]`` -> ``{"old": "new", "_default": "x"}``; ValueError if bad."""
    mapping: dict[str, str] = {}
    for item in items:
        key, sep, agent = item.partition("=")
        key, agent = key.strip(), agent.strip()
        if not sep or not key or not agent:
            raise ValueError(f"expected AGENT=NEW_AGENT (or _default=AGENT), got {item!r}")
        if key in mapping and mapping[key] != agent:
            raise ValueError(f"{key!r} is mapped twice ({mapping[key]!r} and {agent!r})")
        mapping[key] = agent
    return mapping


def reroute(row: dict[str, Any], agent_map: Mapping[str, str]) -> str | None:
    """Apply ``agent_map`` to ``row`` in place; return the agent it now names (None: untouched).

    A malformed ``agent_ref`` (not an object, no string name) counts as no agent: only
    ``_default`` applies to it, and without one validation reports it as it is.
    """
    ref = row.get("agent_ref")
    name = ref.get("name") if isinstance(ref, dict) else None
    current = name if isinstance(name, str) and name else None
    mapped = agent_map.get(current) if current is not None else None
    if mapped is None:
        mapped = agent_map.get(DEFAULT_ROUTE)
    if mapped is None:
        return None
    row["agent_ref"] = {"name": mapped}
    return mapped
