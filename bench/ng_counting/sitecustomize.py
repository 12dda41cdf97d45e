"""Counts the HTTP requests a NeMo Gym server answers (by path), for ``bench.nemo_gym_vs``.

Put on ``PYTHONPATH`` of NeMo Gym's server processes (in NeMo Gym's own venv) with
``GYMSTREAM_BENCH_COUNT_HTTP=1``: Starlette's application call is wrapped so that every HTTP
request adds one to a counter of its path, and ``GET /_bench_counts`` (not counted) answers the
counter as JSON. The wrapper costs a dict increment per request.

With ``GYMSTREAM_BENCH_NO_RAY=1`` too, a server does not start a Ray instance: NeMo Gym 0.7.0
starts one in every server class that does not declare ``ray_enabled`` (``legacy_agent``, the
environment server its collector goes through, does not, and never uses Ray), and Ray gives up
after a fixed 30 s, which a loaded machine misses. Nothing else of NeMo Gym is changed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections import Counter
from types import ModuleType
from typing import Any

_PATH = "/_bench_counts"


def _install() -> None:
    from starlette import applications

    counts: Counter[str] = Counter()
    original = applications.Starlette.__call__

    async def counted(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == _PATH:
                body = json.dumps(counts).encode()
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            counts[scope["path"]] += 1
        await original(self, scope, receive, send)

    applications.Starlette.__call__ = counted  # type: ignore[method-assign]


class _NoRay(importlib.abc.MetaPathFinder):
    """Once ``nemo_gym.server_utils`` is loaded, its ``initialize_ray`` does nothing."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "nemo_gym.server_utils":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            module.initialize_ray = lambda: None  # type: ignore[attr-defined]

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if os.environ.get("GYMSTREAM_BENCH_COUNT_HTTP") == "1":
    _install()
if os.environ.get("GYMSTREAM_BENCH_NO_RAY") == "1":
    sys.meta_path.insert(0, _NoRay())
