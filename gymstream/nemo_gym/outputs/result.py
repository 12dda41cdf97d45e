"""What one finished rollout gives back: NeMo Gym's verify result plus gymstream's timings.

Every agent returns it (the in-process agent loop and a remote ``/run`` agent alike); the
worker turns it into the output row (``worker/outcome.py``).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["RolloutResult", "numeric_reward"]


class RolloutResult(msgspec.Struct, kw_only=True):
    """One finished rollout.

    ``verify_result`` (built by ``output_row.verify_result``) is the NeMo Gym output row
    minus the collector's stamps: the request as sent, the whole-trajectory ``response``,
    ``reward``, ``mask_sample``, ``failure_kind``, ``failure_reason``, the verifier's metrics,
    and the row's other task fields (a superset of NeMo Gym's, as the contract allows).
    ``timings`` holds ``model_s``, ``tools_s``, ``verify_s`` (seconds, summed over turns).
    ``turns`` counts model calls.
    """

    verify_result: dict[str, Any]
    timings: dict[str, float]
    turns: int
    tool_calls: int = 0
    tool_errors: int = 0


def numeric_reward(fields: object) -> float | None:
    """The ``reward`` of a verify result when it is a number, else None.

    The one check every agent makes before it builds an output row (the in-process loop's
    verifier, a resources server's ``/verify``, a remote agent's ``/run``): a bool is not a
    number here, and an answer that is not an object has no reward.
    """
    reward = fields.get("reward") if isinstance(fields, dict) else None
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        return None
    return float(reward)
