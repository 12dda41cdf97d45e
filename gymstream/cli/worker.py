"""`gymstream worker`: serve one agent until SIGTERM/SIGINT, then print what it did."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from gymstream.cli.common import (
    BootstrapOpt,
    ConfigOpt,
    MetricsPortOpt,
    ModelApiOpt,
    ModelBaseUrlOpt,
    ModelNameOpt,
    ModelTokenIdsOpt,
    NemoGymHeadOpt,
    PrefixOpt,
    TopicsFileOpt,
    VerboseOpt,
    fail,
    gym_config,
    kafka_settings,
    layout_for,
    metrics_settings,
    out,
    rollout_settings,
    run,
    setup_logging,
)
from gymstream.cli.progress import Figures, NoProgressOpt, show_progress
from gymstream.cli.scope import NamespaceOpt, scoped_layout
from gymstream.cli.summary import throughput_line
from gymstream.errors import GymstreamError
from gymstream.observe.server import observed
from gymstream.worker.loop import WorkerStats
from gymstream.worker.outage import with_outage
from gymstream.worker.serve import serve_until_signalled

__all__ = ["worker_command", "worker_figures"]


def worker_figures(stats: WorkerStats) -> Figures:
    """A worker's progress: rollouts done (no total: it serves until stopped), failures, in
    flight (taken, not yet done), mean reward."""
    failed = sum(stats.failures.values())
    mean = stats.reward_sum / stats.succeeded if stats.succeeded else None
    return Figures(
        done=stats.done,
        failed=failed,
        in_flight=max(0, stats.taken - stats.done),
        note=with_outage([stats.outage], "" if mean is None else f"mean reward {mean:.2f}"),
    )


def worker_command(
    agent: Annotated[str, typer.Option("--agent", help="The agent this worker serves.")],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", min=1, help="Rollouts in flight (default: the agent's config, 256)."
        ),
    ] = None,
    model_base_url: ModelBaseUrlOpt = None,
    model_name: ModelNameOpt = None,
    model_api: ModelApiOpt = None,
    model_return_token_ids: ModelTokenIdsOpt = None,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    namespace: NamespaceOpt = None,
    topics_file: TopicsFileOpt = None,
    config: ConfigOpt = None,
    nemo_gym_head: NemoGymHeadOpt = None,
    no_progress: NoProgressOpt = False,
    verbose: VerboseOpt = False,
    stop_on_stdin_eof: Annotated[
        bool,
        typer.Option(
            "--stop-on-stdin-eof",
            hidden=True,
            help="Stop (settle, commit, leave) when standard input closes: how the worker "
            "processes of `collect --worker-processes` die with their parent.",
        ),
    ] = False,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Serve one agent: consume its tasks, run rollouts, publish scored results.

    Run any number of these per agent (on any machines): they share the work through the
    agent's consumer group. SIGTERM/SIGINT: stop taking work, settle, commit, leave the group.
    The API key comes from $GYMSTREAM_MODEL_API_KEY (or $OPENAI_API_KEY) and is never printed.
    """
    setup_logging(verbose)
    kafka = kafka_settings(bootstrap)
    layout = scoped_layout(layout_for(topic_prefix, topics_file), namespace)
    try:
        cfg = gym_config(config, nemo_gym_head)
        cfg.agent(agent)
    except GymstreamError as exc:
        raise fail(str(exc)) from None
    overrides = {
        "base_url": model_base_url,
        "name": model_name,
        "api": model_api,
        "return_token_id_information": model_return_token_ids,
    }
    settings = rollout_settings()
    metrics = metrics_settings(metrics_port)
    stats = WorkerStats()
    started = time.perf_counter()

    async def main() -> WorkerStats:
        async with observed(metrics.port, metrics.host) as observer:
            return await serve_until_signalled(
                kafka,
                layout,
                cfg,
                agent,
                settings,
                overrides,
                concurrency,
                stop_on_stdin_eof=stop_on_stdin_eof,
                metrics=observer,
                stats=stats,
            )

    with show_progress(f"worker {agent}", lambda: worker_figures(stats), enabled=not no_progress):
        run(main(), bootstrap=kafka.bootstrap)
    failures = ", ".join(f"{k}: {v}" for k, v in stats.failures.most_common()) or "none"
    out.print(
        f"worker for {agent}: {stats.taken} taken, {stats.succeeded} succeeded, "
        f"failures: {failures}"
    )
    out.print(throughput_line(stats.done, time.perf_counter() - started))
