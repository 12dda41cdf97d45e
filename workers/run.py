"""Entry point of one worker process: parse settings, build, run. No logic of its own.

Usable as ``python -m workers.run --agent NAME`` (the same as ``gymstream worker``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from gymstream.agents import serve_agent
from gymstream.cli.common import install_stop_signals
from gymstream.config import GymConfig
from gymstream.settings import KafkaSettings
from gymstream.topics import TopicLayout
from gymstream.worker import WorkerStats


async def serve_until_signalled(
    kafka: KafkaSettings,
    layout: TopicLayout,
    config: GymConfig,
    agent: str,
    model_overrides: Mapping[str, Any],
    concurrency: int | None,
) -> WorkerStats:
    """Serve ``agent`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    return await serve_agent(
        kafka,
        layout,
        config,
        agent,
        stop=stop,
        model_overrides=model_overrides,
        concurrency=concurrency,
    )


if __name__ == "__main__":  # pragma: no cover
    import typer

    from gymstream.cli.pipeline import worker_command

    typer.run(worker_command)
