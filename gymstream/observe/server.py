"""``/metrics`` (Prometheus text format) and ``/healthz`` (readiness, JSON) on one port.

Served by aiohttp inside the process's own event loop, so a scrape reads the worker's and the
sink's state without locks or threads. ``observed(port)`` is what a command wraps its work in:
no port, no server and no metrics (``None``: the hot path records nothing); a port that cannot
be bound is a ``ConfigError`` (one line, exit 2). ``/healthz`` answers 200 ``{"ready": true,
"checks": {...}}`` when every readiness check passes, else 503 with the same body saying what is
not ready.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gymstream.errors import ConfigError
from gymstream.observe.metrics import Metrics

__all__ = ["observed", "serve_metrics"]

log = logging.getLogger("gymstream.observe.server")


def _app(metrics: Metrics) -> web.Application:
    async def scrape(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(_: web.Request) -> web.Response:
        ready, checks = metrics.readiness.report()
        return web.Response(
            status=200 if ready else 503,
            text=json.dumps({"ready": ready, "checks": checks}),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    return app


@contextlib.asynccontextmanager
async def serve_metrics(metrics: Metrics, port: int, host: str) -> AsyncIterator[int]:
    """Serve ``metrics`` on ``host:port`` for the duration; yields the bound port (0 picks one)."""
    runner = web.AppRunner(_app(metrics), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "pick a free port or leave GYMSTREAM_METRICS_PORT unset"
            ) from None
        bound = int(runner.addresses[0][1])
        log.info("metrics on http://%s:%d/metrics, readiness on /healthz", host, bound)
        yield bound
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def observed(port: int | None, host: str) -> AsyncIterator[Metrics | None]:
    """A fresh ``Metrics`` served on ``port`` while the block runs; ``None`` without a port."""
    if port is None:
        yield None
        return
    metrics = Metrics()
    async with serve_metrics(metrics, port, host):
        yield metrics
