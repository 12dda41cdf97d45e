"""Serve one agent: build its environment and model client, run its worker, close the client.

The one place that turns configuration into a running worker, used by the worker process
(``workers/run.py``) and by ``collect`` alike, so both run the same code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from gymstream.eventloop import install_stop_signals
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.config.agents import GymConfig, resolve_model
from gymstream.observe.metrics import Metrics
from gymstream.rollout.connect import open_environment
from gymstream.rollout.model.spread import open_model_client
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.worker.loop import WorkerStats, run_worker

__all__ = ["serve_agent", "serve_until_signalled", "stop_when_stdin_closes"]

log = logging.getLogger("gymstream.worker.serve")


async def serve_agent(
    kafka: KafkaSettings,
    layout: TopicLayout,
    config: GymConfig,
    agent: str,
    *,
    stop: asyncio.Event,
    settings: RolloutSettings,
    model_overrides: Mapping[str, Any] | None = None,
    concurrency: int | None = None,
    on_outcome: Callable[[str, float | None, str | None], None] | None = None,
    metrics: Metrics | None = None,
    stats: WorkerStats | None = None,
) -> WorkerStats:
    """Run ``agent``'s worker until ``stop`` is set. Raises ConfigError for an unknown agent.

    ``concurrency`` (the CLI's) wins over the agent's configured one; ``metrics`` (None: off)
    receives the worker's metrics and readiness; ``stats`` is filled as the worker goes
    (``run_worker``).
    """
    agent_config = config.agent(agent)
    model_settings = resolve_model(config, agent, model_overrides or {}, settings.model)
    retry = settings.retry
    worker = settings.worker.model_copy(
        update={"concurrency": concurrency or agent_config.concurrency}
    )
    async with open_environment(agent, agent_config, settings.server, retry) as env:
        client = open_model_client(model_settings, retry)
        try:
            return await run_worker(
                kafka,
                layout,
                agent,
                agent_config,
                env,
                client,
                model_name=model_settings.name,
                model_base_url=",".join(model_settings.base_urls or (model_settings.base_url,)),
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
    config: GymConfig,
    agent: str,
    settings: RolloutSettings,
    model_overrides: Mapping[str, Any],
    concurrency: int | None,
    *,
    stop_on_stdin_eof: bool = False,
    metrics: Metrics | None = None,
    stats: WorkerStats | None = None,
) -> WorkerStats:
    """Serve ``agent`` until SIGTERM or SIGINT (what a worker process runs); with
    ``stop_on_stdin_eof`` also when standard input reaches its end: a parent that spawned us
    with a pipe there (``collect --worker-processes``) closes it by dying, even by kill -9."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    if stop_on_stdin_eof:
        stop_when_stdin_closes(stop)
    return await serve_agent(
        kafka,
        layout,
        config,
        agent,
        stop=stop,
        settings=settings,
        model_overrides=model_overrides,
        concurrency=concurrency,
        metrics=metrics,
        stats=stats,
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
