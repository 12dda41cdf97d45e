"""Serve one agent: build its environment and model client, run its worker, close the client.

The one place that turns configuration into a running worker, used by the worker process
(``workers/run.py``) and by ``collect`` alike, so both run the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from gymstream.config import GymConfig, resolve_model
from gymstream.eventloop import install_stop_signals
from gymstream.kafka.topics import TopicLayout
from gymstream.rollout.connect import open_environment
from gymstream.rollout.model.client import build_model_client
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.worker.loop import WorkerStats, run_worker

__all__ = ["serve_agent", "serve_until_signalled"]


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
) -> WorkerStats:
    """Run ``agent``'s worker until ``stop`` is set. Raises ConfigError for an unknown agent.

    ``concurrency`` (the CLI's) wins over the agent's configured one.
    """
    agent_config = config.agent(agent)
    model_settings = resolve_model(config, agent, model_overrides or {}, settings.model)
    retry = settings.retry
    worker = settings.worker.model_copy(
        update={"concurrency": concurrency or agent_config.concurrency}
    )
    async with open_environment(agent, agent_config, settings.server, retry) as env:
        client = build_model_client(model_settings, retry)
        try:
            return await run_worker(
                kafka,
                layout,
                agent,
                agent_config,
                env,
                client,
                model_name=model_settings.name,
                stop=stop,
                settings=worker,
                retry=retry,
                on_outcome=on_outcome,
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
) -> WorkerStats:
    """Serve ``agent`` until SIGTERM or SIGINT (what a worker process runs)."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    return await serve_agent(
        kafka,
        layout,
        config,
        agent,
        stop=stop,
        settings=settings,
        model_overrides=model_overrides,
        concurrency=concurrency,
    )
