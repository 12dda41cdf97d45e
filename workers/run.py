"""Entry point of one worker process: parse settings, build, run. No logic of its own.

Usable as ``python -m workers.run --agent NAME`` (the same as ``gymstream worker``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from gymstream.cli.common import install_stop_signals
from gymstream.config import GymConfig, resolve_model
from gymstream.environment import load_environment
from gymstream.model_client import build_model_client
from gymstream.settings import KafkaSettings, RetrySettings, WorkerSettings
from gymstream.topics import TopicLayout
from gymstream.worker import WorkerStats, run_worker


async def serve_agent(
    kafka: KafkaSettings,
    layout: TopicLayout,
    config: GymConfig,
    agent: str,
    model_overrides: Mapping[str, Any],
    concurrency: int | None,
) -> WorkerStats:
    """Build the agent's environment and model client and serve until SIGTERM/SIGINT."""
    agent_config = config.agent(agent)
    env = load_environment(agent_config.environment)
    model_settings = resolve_model(config, agent, model_overrides)
    retry = RetrySettings()
    client = build_model_client(model_settings, retry)
    stop = asyncio.Event()
    install_stop_signals(stop)
    settings = WorkerSettings(concurrency=concurrency or agent_config.concurrency)
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
            settings=settings,
            retry=retry,
        )
    finally:
        await client.aclose()


if __name__ == "__main__":  # pragma: no cover
    import typer

    from gymstream.cli.pipeline import worker_command

    typer.run(worker_command)
