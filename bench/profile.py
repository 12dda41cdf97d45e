"""Profile the worker process: one more staged run with the worker under a profiler.

``--profile-worker cprofile`` (stdlib; deterministic, so it slows the worker down, but it counts
every call) writes ``worker.prof`` and ``worker_profile.txt`` (top functions by own time and by
cumulative time) next to the results JSON, and puts two summaries in it: the top functions by
own time, and own time grouped by package (``httpx``, ``aiokafka``, ``gymstream.worker.loop``, ...),
as shares of the CPU the worker spent (the event loop's idle wait in epoll is left out).
``--profile-worker pyinstrument`` (sampling, so cheaper and closer to the real split; needs
``pip install pyinstrument``, not a project dependency) writes its session and, as text, the
call tree and a flat list of own time. The profiled run's figures are not the bench's.
"""

from __future__ import annotations

import pstats
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.pipeline import Bench, ModelServer, run_staged

__all__ = ["profile_worker"]

_SITE = re.compile(r"site-packages/([^/]+)/")
_OURS = re.compile(r"/(gymstream|workers|environments)/(.+)\.py$")


def _group(file_name: str, name: str) -> str:
    """The package a profiled function belongs to (see the module docstring)."""
    if file_name == "~":
        return "idle (epoll wait)" if "epoll" in name else "builtins (C functions)"
    if (site := _SITE.search(file_name)) is not None:
        return site.group(1)
    if (ours := _OURS.search(file_name)) is not None:
        return f"{ours.group(1)}.{ours.group(2).replace('/', '.')}"
    if "/asyncio/" in file_name:
        return "asyncio"
    if file_name.startswith("<frozen"):
        return "imports"
    return "stdlib (other)"


def summarise(raw: Path, text: Path) -> dict[str, Any]:
    """Write the text report of a cProfile file and return its summaries."""
    with text.open("w") as handle:
        stats = pstats.Stats(str(raw), stream=handle)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(60)
    functions = stats.get_stats_profile().func_profiles
    by_package: dict[str, float] = defaultdict(float)
    for name, f in functions.items():
        by_package[_group(f.file_name, name)] += f.tottime
    idle = by_package.pop("idle (epoll wait)", 0.0)
    busy = sum(by_package.values())
    ranked = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)
    top = sorted(functions.items(), key=lambda kv: kv[1].tottime, reverse=True)
    return {
        "text": str(text),
        "busy_s": busy,
        "idle_s": idle,
        "by_package": [
            {"package": package, "tottime_s": seconds, "share": seconds / busy}
            for package, seconds in ranked[:15]
        ],
        "top_tottime": [
            {
                "function": f"{Path(f.file_name).name}:{f.line_number}({name})",
                "calls": f.ncalls,
                "tottime_s": f.tottime,
                "cumtime_s": f.cumtime,
            }
            for name, f in top
            if "epoll" not in name
        ][:15],
    }


def profile_worker(
    bench: Bench, model: ModelServer, *, tool: str, n: int, concurrency: int, out_dir: Path
) -> dict[str, Any]:
    """Run the staged pipeline once more with its worker under ``tool``; see the docstring."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if tool == "cprofile":
        raw = out_dir / "worker.prof"
        cli = [sys.executable, "-m", "cProfile", "-o", str(raw), "-m", "gymstream.cli.main"]
    else:
        raw = out_dir / "worker.pyisession"
        cli = [sys.executable, "-m", "pyinstrument", "-r", "session", "-o", str(raw)]
        cli += ["-m", "gymstream.cli.main"]
    run = run_staged(
        bench, model, n=n, concurrency=concurrency, workers=1, label="profile", worker_cli=cli
    )
    found: dict[str, Any] = {"tool": tool, "file": str(raw), "n": n}
    found["rate_under_profiler"] = run["rate_steady"]
    if tool == "cprofile":
        found.update(summarise(raw, out_dir / "worker_profile.txt"))
    else:  # the call tree and a flat list of own time, as text
        for name, options in (("tree", []), ("flat", ["-p", "flat=true"])):
            text = out_dir / f"worker_pyinstrument_{name}.txt"
            load = ["--load", str(raw), "-r", "text", "--no-color", *options, "-o", str(text)]
            subprocess.run([sys.executable, "-m", "pyinstrument", *load], check=True)
            found[f"text_{name}"] = str(text)
    return found
