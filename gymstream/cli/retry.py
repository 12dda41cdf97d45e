"""`gymstream retry-failures`: publish a run's non-terminal failures again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gymstream.cli.common import (
    BootstrapOpt,
    PrefixOpt,
    TopicsFileOpt,
    fail,
    kafka_settings,
    layout_for,
    out,
    run,
)
from gymstream.cli.scope import NamespaceOpt, scoped_layout
from gymstream.nemo_gym.outputs.files import OutputPaths, read_run_file
from gymstream.nemo_gym.outputs.resume import DEFAULT_MAX_ATTEMPTS, apply_plan, plan_resume
from gymstream.produce.producer import republish

__all__ = ["retry_failures_command"]


def retry_failures_command(
    run_id: Annotated[str, typer.Option("--run-id", help="The run whose failures to retry.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The run's output JSONL.")],
    max_attempts: Annotated[
        int,
        typer.Option("--max-attempts", min=1, help="Attempts allowed per rollout, first included."),
    ] = DEFAULT_MAX_ATTEMPTS,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    namespace: NamespaceOpt = None,
    topics_file: TopicsFileOpt = None,
) -> None:
    """Publish a run's non-terminal failures again, each with its next attempt number.

    Failures that are terminal (a 400, a verifier bug) or out of attempts stay as they are.
    Retried ones move from <stem>_failures.jsonl to <stem>_failures_history.jsonl; then run
    `gymstream sink` with the same --output and --run-id (workers must be running) to collect.
    """
    kafka = kafka_settings(bootstrap)
    layout = scoped_layout(layout_for(topic_prefix, topics_file), namespace)
    paths = OutputPaths(output)
    state = read_run_file(paths)
    if state is None or state.get("run_id") != run_id:
        owner = state.get("run_id") if state else None
        raise fail(
            f"{output} is not the output of run '{run_id}'"
            + (f" (it belongs to '{owner}')" if owner else " (no run file beside it)")
        )
    plan = plan_resume(paths, run_id, max_attempts=max_attempts)
    if not plan.retry:
        out.print(f"nothing to retry ({plan.exhausted} failures are out of attempts)")
        return
    # publish first, then move the failures aside: a crash in between only repeats work
    counts = run(republish(kafka, layout, run_id, plan.retry), bootstrap=kafka.bootstrap)
    apply_plan(paths, plan)
    per_agent = ", ".join(f"{a}: {n}" for a, n in sorted(counts.items()))
    out.print(
        f"republished {sum(counts.values())} failed rollouts ({per_agent}); "
        f"{plan.exhausted} out of attempts. Now run: gymstream sink --output {output} "
        f"--run-id {run_id}"
    )
