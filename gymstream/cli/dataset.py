"""The dataset options shared by `gymstream produce` and `gymstream collect`, and their parsing.

Input checks, repeats (``--num-repeats``, ``--num-repeats-per-agent``), request overrides,
run ids: turned into the producer's ``ProduceOptions``. A bad value exits 2 with one line.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from gymstream.cli.common import fail
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.rows.overrides import parse_override
from gymstream.nemo_gym.rows.rollouts import DEFAULT_REPEATS_KEY, parse_repeats
from gymstream.nemo_gym.rows.routing import DEFAULT_ROUTE, parse_agent_map
from gymstream.produce.producer import ProduceOptions

__all__ = [
    "AgentMapOpt",
    "AgentNameOpt",
    "FailFastOpt",
    "LimitOpt",
    "NumRepeatsOpt",
    "OverrideAgentsOpt",
    "ParamsOpt",
    "PerAgentOpt",
    "RunIdOpt",
    "SeedOpt",
    "agent_map_value",
    "check_input",
    "new_run_id",
    "overrides_value",
    "produce_options",
    "repeats_value",
]

NumRepeatsOpt = Annotated[
    int | None,
    typer.Option(
        "--num-repeats",
        min=1,
        help="Rollouts per input row, the GRPO group size (NeMo Gym: num_repeats).",
        show_default="1",
    ),
]
PerAgentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--num-repeats-per-agent",
        metavar="AGENT=N",
        help="Repeats for one agent (repeatable; `_default=N` for the rest; NeMo Gym: "
        "num_repeats as a dict).",
    ),
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Only the first N lines (NeMo Gym: limit).")
]
AgentNameOpt = Annotated[
    str | None,
    typer.Option(
        "--agent-name",
        help="Agent for rows that have no agent_ref (with --override-agents: for every row, "
        "NeMo Gym 0.7.0's agent_name).",
    ),
]
AgentMapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--agent-map",
        metavar="AGENT=NEW",
        help="Re-route rows of agent AGENT to NEW (repeatable; `_default=NEW` for every other "
        "row, with or without agent_ref): NeMo Gym's agent_map.",
    ),
]
OverrideAgentsOpt = Annotated[
    bool,
    typer.Option(
        "--override-agents",
        help="--agent-name routes every row, overriding agent_ref (NeMo Gym 0.7.0's meaning: "
        "--agent-map _default=NAME).",
    ),
]
ParamsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--responses-create-params",
        metavar="KEY=VALUE",
        help="Override a key of responses_create_params (repeatable), e.g. temperature=0.6 "
        "(NeMo Gym: responses_create_params).",
    ),
]
RunIdOpt = Annotated[
    str | None,
    typer.Option(
        "--run-id",
        help="Run id (default: a new one). Reuse it to resume a run (NeMo Gym: "
        "resume_from_cache, always on).",
    ),
]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first bad row.")]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--rollout-seed",
        help="Add responses_create_params.seed = BASE + rollout index (NeMo Gym's optional "
        "per-rollout seed: reproducible, different samples within a group). Only for endpoints "
        "that accept `seed` (vLLM does).",
        metavar="BASE",
    ),
]


AddSeedOpt = Annotated[
    bool,
    typer.Option(
        "--num-repeats-add-seed",
        help="NeMo Gym's num_repeats_add_seed: put seed = rollout index into each row's "
        "responses_create_params.metadata.extra_body (a JSON string), which a NeMo Gym "
        "vllm_model endpoint merges into its request. --rollout-seed is gymstream's older "
        "way: a top-level seed = BASE + rollout index.",
    ),
]


def repeats_value(num_repeats: int | None, per_agent: list[str] | None) -> int | dict[str, int]:
    """``--num-repeats`` (default 1), or the per-agent map with it as ``_default``; exit 2."""
    if per_agent:
        try:
            mapping = parse_repeats(per_agent)
        except ValueError as exc:
            raise fail(f"--num-repeats-per-agent: {exc}") from None
        if num_repeats is not None:
            mapping.setdefault(DEFAULT_REPEATS_KEY, num_repeats)
        return mapping
    return num_repeats or 1


def agent_map_value(
    items: list[str] | None, agent_name: str | None, override: bool
) -> dict[str, str]:
    """``--agent-map`` (plus ``--agent-name`` as ``_default`` with ``--override-agents``)."""
    try:
        mapping = parse_agent_map(items or [])
    except ValueError as exc:
        raise fail(f"--agent-map: {exc}") from None
    if override:
        if agent_name is None:
            raise fail("--override-agents needs --agent-name (the agent every row goes to)")
        if mapping.get(DEFAULT_ROUTE, agent_name) != agent_name:
            raise fail(
                f"--agent-name {agent_name} --override-agents conflicts with --agent-map "
                f"_default={mapping[DEFAULT_ROUTE]}: give only one of them"
            )
        mapping[DEFAULT_ROUTE] = agent_name
    return mapping


def overrides_value(values: list[str] | None) -> dict[str, object]:
    """``--responses-create-params`` as a map (a later KEY wins); exit 2 on a malformed one."""
    result: dict[str, object] = {}
    for text in values or []:
        try:
            key, value = parse_override(text)
        except ValueError as exc:
            raise fail(f"--responses-create-params: {exc}") from None
        result[key] = value
    return result


def produce_options(
    input_path: Path,
    cfg: GymConfig,
    *,
    run_id: str | None,
    agent_name: str | None,
    repeats: int | dict[str, int],
    limit: int | None,
    params: list[str] | None,
    fail_fast: bool,
    rejects_path: Path,
    materialized_path: Path | None = None,
    rollout_seed: int | None = None,
    agent_map: dict[str, str] | None = None,
    num_repeats_add_seed: bool = False,
) -> ProduceOptions:
    """The producer's options from the CLI's (shared by produce and collect)."""
    return ProduceOptions(
        input_path=input_path,
        run_id=run_id or new_run_id(),
        known_agents=frozenset(cfg.agents),
        default_agent=agent_name,
        num_repeats=repeats,
        limit=limit,
        overrides=overrides_value(params),
        fail_fast=fail_fast,
        rejects_path=rejects_path,
        materialized_path=materialized_path,
        rollout_seed=rollout_seed,
        agent_map=agent_map or {},
        num_repeats_add_seed=num_repeats_add_seed,
    )


def check_input(path: Path) -> None:
    """Refuse a missing or empty input before anything is published."""
    if path.is_dir():
        raise fail(f"{path} is a directory: pass the JSONL file itself (e.g. {path}/data.jsonl)")
    if not path.is_file():
        raise fail(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise fail(f"{path}: no rows to publish: the file is empty", 1)


def new_run_id() -> str:
    """A fresh run id: local time and six random hex digits, e.g. ``20260101-120000-1a2b3c``."""
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
