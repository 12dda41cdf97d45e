"""`gymstream stream`: a run's rollouts (or whole groups) as JSON lines on stdout, for piping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Annotated, BinaryIO

import typer

from gymstream.cli.configure import kafka_settings, layout_for, setup_logging
from gymstream.cli.console import console, fail
from gymstream.cli.execute import run
from gymstream.cli.options import BootstrapOpt, PrefixOpt, TopicsFileOpt, VerboseOpt
from gymstream.cli.progress import Figures, NoProgressOpt, show_progress
from gymstream.eventloop import install_stop_signals
from gymstream.kafka.topics import TopicLayout
from gymstream.settings import KafkaSettings
from gymstream.trainer.grouping import Group
from gymstream.trainer.selection import StreamStats
from gymstream.trainer.stream import StreamOptions, open_stream
from gymstream.wire.codec import ENCODER

__all__ = ["stream_command", "stream_figures"]

_COMMIT_EVERY = 100  # lines: a killed command repeats at most this many on its next start


RunIdsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--run-id",
        help="The run to stream; repeat it to stream several runs, in that order.",
        show_default=False,
    ),
]

RunPrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--run-prefix",
        help="Stream every run whose id starts with this (runs present at the start, "
        "oldest first), instead of --run-id.",
        show_default=False,
    ),
]

GroupsOpt = Annotated[
    bool,
    typer.Option(
        "--groups",
        help="One line per group (every rollout of a task) instead of one per rollout.",
    ),
]

GroupSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--group-size",
        min=1,
        help="Rollouts per group for every agent (implies --groups); default: each "
        "agent's repeats, from the run's manifest.",
        show_default=False,
    ),
]

MaxUnitsOpt = Annotated[
    int | None,
    typer.Option("--max", min=1, help="Stop after this many lines.", show_default=False),
]

FromBeginningOpt = Annotated[
    bool,
    typer.Option(
        "--from-beginning", help="Start from the run's first rollout, not the saved position."
    ),
]

ConsumerOpt = Annotated[
    str,
    typer.Option("--consumer", help="Names the saved position: another name reads the run afresh."),
]

MaxStalenessOpt = Annotated[
    int | None,
    typer.Option(
        "--max-staleness",
        min=0,
        help="Drop rollouts more than this many versions behind --policy-version.",
        show_default=False,
    ),
]

PolicyVersionOpt = Annotated[
    int | None,
    typer.Option("--policy-version", help="The reader's policy version.", show_default=False),
]

DropZeroVarianceOpt = Annotated[
    bool,
    typer.Option("--drop-zero-variance", help="Drop groups whose rewards are all equal."),
]

WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="Per-agent mix, e.g. 'agent_a=3,agent_b=1' (agents left out are dropped).",
        show_default=False,
    ),
]


def stream_command(
    run_id: RunIdsOpt = None,
    run_prefix: RunPrefixOpt = None,
    groups: GroupsOpt = False,
    group_size: GroupSizeOpt = None,
    max_units: MaxUnitsOpt = None,
    from_beginning: FromBeginningOpt = False,
    consumer: ConsumerOpt = "cli",
    max_staleness: MaxStalenessOpt = None,
    policy_version: PolicyVersionOpt = None,
    drop_zero_variance: DropZeroVarianceOpt = False,
    weights: WeightsOpt = None,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    topics_file: TopicsFileOpt = None,
    no_progress: NoProgressOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Print a run's rollouts as JSON lines: NeMo Gym output rows, or groups of them.

    Groups are as large as each agent's repeats (from the run's manifest) unless --group-size
    says otherwise. Several --run-id, or --run-prefix, stream several runs one after another,
    each resumed exactly from its own saved position.

    A group line has the keys rollouts (the rows), run_id, agent, task_index, rewards and
    policy_versions. It may start before the run's rollouts exist: it waits for them, and
    stops when the run is complete (or after --max lines). Lines already printed are not printed
    again by the next start with the same --consumer (a killed command repeats at most the last
    100); --from-beginning starts over. A summary goes to stderr.
    """
    setup_logging(verbose)
    options = stream_options(
        run_id or [],
        run_prefix,
        unit="group" if groups or group_size is not None else "rollout",
        group_size=group_size,
        consumer=consumer,
        from_beginning=from_beginning,
        policy_version=policy_version,
        max_staleness=max_staleness,
        drop_zero_variance=drop_zero_variance,
        weights=_parse_weights(weights) if weights else None,
    )
    kafka = kafka_settings(bootstrap)
    layout = layout_for(topic_prefix, topics_file)
    live: list[StreamStats] = []
    with show_progress(
        "stream",
        lambda: stream_figures(live[0] if live else None, options),
        enabled=not no_progress,
    ):
        stats, stopped = run(
            _print_units(kafka, layout, options, max_units, sys.stdout.buffer, live),
            bootstrap=kafka.bootstrap,
        )
    _summary(stats, options)
    if stopped:
        raise typer.Exit(130)


def stream_options(
    runs: list[str],
    run_prefix: str | None,
    *,
    unit: str,
    group_size: int | None,
    consumer: str,
    from_beginning: bool,
    policy_version: int | None,
    max_staleness: int | None,
    drop_zero_variance: bool,
    weights: dict[str, float] | None,
) -> StreamOptions:
    """The stream's options from the command line; a mistake is one line, exit 2."""
    try:
        return StreamOptions(
            run_id=runs[0] if len(runs) == 1 else "",
            run_ids=tuple(runs) if len(runs) > 1 else (),
            run_prefix=run_prefix or "",
            unit=unit,
            group_size=group_size,
            consumer=consumer,
            from_beginning=from_beginning,
            policy_version=policy_version,
            max_staleness=max_staleness,
            drop_zero_variance=drop_zero_variance,
            weights=weights,
        )
    except ValueError as exc:
        if bool(runs) == bool(run_prefix):
            raise fail("give --run-id (once or more) or --run-prefix, not both") from None
        raise fail(str(exc).splitlines()[-1].strip()) from None


def _parse_weights(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in text.split(","):
        agent, sep, value = item.strip().partition("=")
        try:
            if not sep or not agent:
                raise ValueError(item)
            out[agent] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"'{item.strip()}' is not AGENT=WEIGHT", param_hint="--weights"
            ) from None
    return out


def _line(unit: Group, per_rollout: bool) -> bytes:
    if per_rollout:
        return bytes(unit.rollouts[0].output)
    return ENCODER.encode(
        {
            "rollouts": [r.output for r in unit.rollouts],
            "run_id": unit.run_id,
            "agent": unit.agent,
            "task_index": unit.task_index,
            "rewards": unit.rewards,
            "policy_versions": unit.policy_versions,
        }
    )


async def _print_units(
    kafka: KafkaSettings,
    layout: TopicLayout,
    options: StreamOptions,
    max_units: int | None,
    out: BinaryIO,
    live: list[StreamStats] | None = None,
) -> tuple[StreamStats, bool]:
    """Print until the run is complete, ``max_units`` lines, a signal, or a closed pipe;
    ``live`` gets the stream's stats once it is open (for progress).

    A unit is acknowledged once its line is flushed; acknowledgements are saved every
    ``_COMMIT_EVERY`` lines, whenever the stream waits, and at the end.
    """
    stop = asyncio.Event()
    install_stop_signals(stop)
    per_rollout = options.unit == "rollout"
    written = 0
    async with open_stream(kafka, layout, options) as stream:
        if live is not None:
            live[:] = [stream.stats]
        while not stop.is_set() and (max_units is None or written < max_units):
            unit = await stream.next_group(timeout_s=0.5)
            if unit is None:
                if stream.finished:
                    break
                await stream.commit()  # idle: save what was printed
                continue
            try:
                out.write(_line(unit, per_rollout) + b"\n")
                out.flush()
            except BrokenPipeError:  # the reader went away (`| head`): keep what it got
                await stream.commit(g for g in stream.handed if g is not unit)
                _silence_stdout()
                return stream.stats, False
            written += 1
            if written % _COMMIT_EVERY == 0:
                await stream.commit()
        await stream.commit()
        return stream.stats, stop.is_set()


def _silence_stdout() -> None:
    """After a broken pipe, send what Python flushes at exit nowhere (no second error)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def stream_figures(stats: StreamStats | None, options: StreamOptions) -> Figures:
    """A stream's progress: lines printed, what was dropped (no total: it follows the run)."""
    unit = "rollouts" if options.unit == "rollout" else "groups"
    if stats is None:
        return Figures(done=0, unit=unit, note="opening the stream")
    dropped = sum(stats.dropped.values())
    return Figures(
        done=stats.delivered_total, unit=unit, note=f"{dropped} dropped" if dropped else ""
    )


def _summary(stats: StreamStats, options: StreamOptions) -> None:
    what = "rollouts" if options.unit == "rollout" else "groups"
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(stats.dropped.items())) or "none"
    mix = ", ".join(f"{a} {share:.0%}" for a, share in stats.mix().items())
    console.print(
        f"{stats.delivered_total} {what} printed ({mix or 'none'}); dropped: {dropped}; "
        f"duplicates skipped: {stats.duplicates + stats.closed_skipped}",
        highlight=False,
    )
