"""What a trainer stream delivers and how: ``StreamOptions``, validated once."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["StreamOptions"]


class StreamOptions(BaseModel):
    """What a trainer stream delivers and how; validated once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field("", description="The run to stream (or give run_ids or run_prefix).")
    unit: Literal["group", "rollout"] = "group"
    group_size: int | None = Field(
        None,
        ge=1,
        description="Rollouts per group, for every agent; default: each agent's repeats, as the "
        "run's manifest records them.",
    )
    consumer: str = Field(
        "trainer",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Names the saved position (and the progress a Pacer follows).",
    )
    commit: Literal["explicit", "on_next"] = "explicit"
    from_beginning: bool = Field(False, description="Ignore a saved position; start afresh.")
    policy_version: int | None = Field(None, description="The trainer's version at the start.")
    max_staleness: int | None = Field(None, ge=0)
    on_stale: Literal["drop", "keep"] = "drop"
    drop_zero_variance: bool = False
    incomplete: Literal["drop", "deliver"] = "drop"
    deliver_failed: bool = Field(
        False,
        description="With incomplete='deliver', also deliver units whose every rollout failed "
        "(the rollout client reports each failure; a trainer has nothing to train on there).",
    )
    weights: dict[str, float] | None = Field(None, description="Per-agent mixing weights.")
    max_held: int = Field(256, ge=1, description="Finished units held for mixing, at most.")
    fetch_records: int = Field(1000, ge=1)
    poll_ms: int = Field(200, ge=1)
    run_ids: tuple[str, ...] = Field((), description="Several runs in one stream, in this order.")
    run_prefix: str = Field(
        "", description="Every run whose id starts with this, on the runs topic at open."
    )

    @model_validator(mode="after")
    def _one_choice_of_runs(self) -> Self:
        given = [bool(self.run_id), bool(self.run_ids), bool(self.run_prefix)]
        if sum(given) != 1:
            raise ValueError("give exactly one of run_id, run_ids and run_prefix")
        if any(not run for run in self.run_ids) or len(set(self.run_ids)) != len(self.run_ids):
            raise ValueError("run_ids must be distinct, non-empty run ids")
        return self

    def for_run(self, run_id: str) -> StreamOptions:
        """These options for one run of the stream (what that run's ``Delivery`` follows)."""
        return self.model_copy(update={"run_id": run_id, "run_ids": (), "run_prefix": ""})

    @property
    def unit_size(self) -> int:
        """Rollouts per unit as a saved position records it: 1 in rollout mode, the
        ``group_size`` override, or 0 for per-agent sizes from the run's manifest."""
        return 1 if self.unit == "rollout" else (self.group_size or 0)
