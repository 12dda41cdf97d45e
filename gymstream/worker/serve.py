"""Serve one agent: build its model client and agent from its plan, run its worker, close them.

The one place that turns an ``AgentPlan`` into a running worker, used by the worker process
(``workers/run.py``) and by ``collect`` alike, so both run the same code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable

from gymstream.eventloop import install_stop_signals
from gymstream.kafka.topics import TopicLayout
from gymstream.observe.metrics import Metrics
from gymstream.rollout.connect import open_agent
from gymstream.rollout.model.spread import open_model_client
from gymstream.rollout.plan import AgentPlan
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.worker.loop import WorkerStats, run_worker
from gymstream.worker.slow import SlowCalls, TimedModel

__all__ = ["serve_agent", "serve_until_signalled", "stop_when_stdin_closes"]

log = logging.getLogger("gymstream.worker.serve")


async def serve_agent(
    kafka: KafkaSettings,
    layout: TopicLayout,
    plan: AgentPlan,
    *,
    stop: asyncio.Event,
    settings: RolloutSettings,
    on_outcome: Callable[[str, float | None, str | None], None] | None = None,
    metrics: Metrics | None = None,
    stats: WorkerStats | None = None,
) -> WorkerStats:
    """Run the plan's worker until ``stop`` is set (``settings``: retries, the worker's own and
    the servers'; the model is the plan's). ``metrics`` (None: off) receives the worker's
    metrics and readiness; ``stats`` is filled as the worker goes (``run_worker``)."""
    retry = settings.retry
    worker = settings.worker.model_copy(update={"concurrency": plan.concurrency})
    client = open_model_client(plan.model, retry)
    try:
        url = str(getattr(client, "url", "(the configured URL)"))
        slow = SlowCalls(worker.slow_model_call_s, worker.slow_model_calls, url=url)
        model = TimedModel(client, slow)
        async with open_agent(plan, model, settings.server, retry) as agent:
            return await run_worker(
                kafka,
                layout,
                plan.name,
                agent,
                model_url=url,
                environment_server=plan.config.environment_stamp(),
                model_name=plan.model.name,
                model_base_url=",".join(plan.model.base_urls or (plan.model.base_url,)),
                stop=stop,
                settings=worker,
                retry=retry,
                on_outcome=on_outcome,
                metrics=metrics,
                stats=stats,
            )
    finally:
        await client.aclose()


async def serve_until_signalled(
    kafka: KafkaSettings,
    layout: TopicLayout,
    plan: AgentPlan,
    settings: RolloutSettings,
    *,
    stop_on_stdin_eof: bool = False,
    metrics: Metrics | None = None,
    stats: WorkerStats | None = None,
) -> WorkerStats:
    """Serve the plan's agent until SIGTERM or SIGINT (what a worker process runs); with
    ``stop_on_stdin_eof`` also when standard input reaches its end: a parent that spawned us
    with a pipe there (``collect --worker-processes``) closes it by dying, even by kill -9."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    if stop_on_stdin_eof:
        stop_when_stdin_closes(stop)
    return await serve_agent(
        kafka, layout, plan, stop=stop, settings=settings, metrics=metrics, stats=stats
    )


def stop_when_stdin_closes(stop: asyncio.Event) -> None:
    """Set ``stop`` when standard input reaches end of file (its writer is gone)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            log.warning("standard input closed (the parent process is gone): stopping")
            stop.set()

    loop.add_reader(fd, readable)
