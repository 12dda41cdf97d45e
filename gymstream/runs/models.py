"""Which models produced a run's rows: one label per model, one line when there are several.

A result's envelope says which model produced it (``ResultMessage.model_base_url``,
``model_name``, with ``policy_version``); the sink counts a run's results per ``model_label``
(``SinkReport.models``, published in ``SinkProgress.models``) and the sink's summary and
``gymstream status`` print ``mixed_models_line`` when a run's rows come from more than one.
Policy versions of one model are not "more than one model": a trainer moves them on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["mixed_models_line", "model_label"]


def model_label(name: str, base_url: str) -> str:
    """``<model name> at <base url>``; "" when the worker did not say (an older worker)."""
    if not name and not base_url:
        return ""
    return f"{name or '?'} at {base_url or '?'}"


def mixed_models_line(run_id: str, models: Mapping[str, int]) -> str | None:
    """``rows of run R come from 2 models: A (7), B (3)`` when there are several, else None."""
    if len(models) < 2:
        return None
    each = ", ".join(f"{m} ({n})" for m, n in sorted(models.items(), key=lambda i: (-i[1], i[0])))
    return f"rows of run {run_id} come from {len(models)} models: {each}"
