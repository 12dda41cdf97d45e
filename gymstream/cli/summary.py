"""The figures an end summary adds: throughput, token totals, latency percentiles.

As NeMo Gym's collector prints them after a run (``DispatchLatencyTracker.summary``: median,
p90, p99 and max of the per-rollout time, and the task time delivered), here per timing the
results carry (the whole rollout, and its model, tool and verify time), from the sink's bounded
histograms (``sink/latency.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table

from gymstream.sink.latency import LogHistogram, Timings

__all__ = ["QUANTILES", "latency_table", "throughput_line", "tokens_text"]

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_NAMES = {
    "total_s": "rollout",
    "model_s": "model",
    "tools_s": "tools",
    "verify_s": "verify",
    "run_s": "remote agent /run",
}


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s" if value < 600 else f"{value / 60:.1f} min"


def tokens_text(tokens: Mapping[str, int]) -> str:
    """``1,234 in, 567 out`` (Responses usage names), or ``none reported``."""
    parts = [
        f"{tokens[key]:,} {name}"
        for key, name in (("input_tokens", "in"), ("output_tokens", "out"))
        if key in tokens
    ]
    return ", ".join(parts) or "none reported"


def throughput_line(
    rollouts: int, elapsed_s: float, tokens: Mapping[str, int] | None = None
) -> str:
    """``throughput: 12.5 rollouts/s (300 in 24.0 s); tokens: ...`` (no tokens part when
    ``tokens`` is None)."""
    rate = rollouts / elapsed_s if elapsed_s > 0 else 0.0
    line = f"throughput: {rate:.1f} rollouts/s ({rollouts} in {elapsed_s:.1f} s)"
    return line if tokens is None else f"{line}; tokens: {tokens_text(tokens)}"


def _order(name: str) -> tuple[int, str]:
    """Known timings in ``_NAMES`` order, then the others by name."""
    known = list(_NAMES)
    return (known.index(name) if name in known else len(known), name)


def latency_table(timings: Timings) -> Table | None:
    """p50 / p90 / p99 / max per timing, rollout first; None when no result had timings."""
    rows: list[tuple[str, LogHistogram]] = [
        (_NAMES.get(name, name), timings.by_name[name])
        for name in sorted(timings.by_name, key=_order)
    ]
    if not rows:
        return None
    count = max(h.count for _, h in rows)
    table = Table(title=f"latency over {count} rollouts")
    table.add_column("time")
    for name, _ in QUANTILES:
        table.add_column(name, justify="right")
    table.add_column("max", justify="right")
    table.add_column("total", justify="right")
    for name, histogram in rows:
        table.add_row(
            name,
            *(_seconds(histogram.quantile(q)) for _, q in QUANTILES),
            _seconds(histogram.max),
            _seconds(histogram.total),
        )
    return table
