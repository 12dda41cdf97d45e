"""`gymstream worker`: serve one agent until SIGTERM/SIGINT, then print what it did."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from gymstream.cli.configure import (
    agent_plan,
    gym_config,
    kafka_settings,
    layout_for,
    metrics_settings,
    model_options,
    rollout_settings,
    setup_logging,
)
from gymstream.cli.console import fail, out
from gymstream.cli.execute import run
from gymstream.cli.options import (
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
)
from gymstream.cli.progress import Figures, NoProgressOpt, show_progress
from gymstream.cli.scope import NamespaceOpt, scoped_layout
from gymstream.cli.summary import throughput_line
from gymstream.errors import GymstreamError
from gymstream.observe.server import observed
from gymstream.rollout.plan import AgentPlan, AgentPlans, read_plan
from gymstream.worker.loop import WorkerStats
from gymstream.worker.outage import with_outage
from gymstream.worker.serve import serve_until_signalled

__all__ = ["worker_command", "worker_figures"]

AgentOpt = Annotated[str, typer.Option("--agent", help="The agent this worker serves.")]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency", min=1, help="Rollouts in flight (default: the agent's config, 256)."
    ),
]
StopOnEofOpt = Annotated[
    bool,
    typer.Option(
        "--stop-on-stdin-eof",
        hidden=True,
        help="Stop (settle, commit, leave) when standard input closes: how a worker process "
        "dies with the parent that spawned it.",
    ),
]
PlanStdinOpt = Annotated[
    bool,
    typer.Option(
        "--plan-stdin",
        hidden=True,
        help="Read the agent's plan (configuration, resolved model, concurrency) as one JSON "
        "line from standard input, then stop when it closes (--stop-on-stdin-eof): how `collect "
        "--worker-processes` starts its workers (the model and config options are ignored).",
    ),
]


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
    agent: AgentOpt,
    concurrency: ConcurrencyOpt = None,
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
    stop_on_stdin_eof: StopOnEofOpt = False,
    plan_stdin: PlanStdinOpt = False,
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
    settings = rollout_settings()
    if plan_stdin:
        plan = stdin_plan(agent)
    else:
        options = model_options(model_base_url, model_name, model_api, model_return_token_ids)
        plans = AgentPlans(gym_config(config, nemo_gym_head), options, settings.model, concurrency)
        plan = agent_plan(plans, agent)
    metrics = metrics_settings(metrics_port)
    stats = WorkerStats()
    started = time.perf_counter()

    async def main() -> WorkerStats:
        async with observed(metrics.port, metrics.host) as observer:
            return await serve_until_signalled(
                kafka,
                layout,
                plan,
                settings,
                stop_on_stdin_eof=stop_on_stdin_eof or plan_stdin,
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


def stdin_plan(agent: str) -> AgentPlan:
    """The plan a parent sent on standard input (``--plan-stdin``); it must be ``agent``'s."""
    try:
        plan = read_plan(sys.stdin.fileno())
    except GymstreamError as exc:
        raise fail(str(exc)) from None
    if plan.name != agent:
        raise fail(f"--agent {agent} but the plan on standard input is for {plan.name}")
    return plan
