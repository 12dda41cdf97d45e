"""Counts the HTTP requests a NeMo Gym server answers (by path), for ``bench.nemo_gym_vs``.

Put on ``PYTHONPATH`` of NeMo Gym's server processes (in NeMo Gym's own venv) with
``GYMSTREAM_BENCH_COUNT_HTTP=1``: Starlette's application call is wrapped so that every HTTP
request adds one to a counter of its path, and ``GET /_bench_counts`` (not counted) answers the
counter as JSON. NeMo Gym's code is not changed; the wrapper costs a dict increment per request.
"""

from __future__ import annotations

import json
import os
from collections import Counter
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


if os.environ.get("GYMSTREAM_BENCH_COUNT_HTTP") == "1":
    _install()
