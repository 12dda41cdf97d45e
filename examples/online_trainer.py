"""An online GRPO trainer loop over gymstream's trainer stream (with a stand-in for the update).

It consumes a run's rollouts as whole groups, computes GRPO advantages, "trains" (prints),
bumps the policy version after every batch and publishes it for workers, then commits, so a
restart with the same --consumer continues exactly after the last trained batch. At the end it
prints the staleness histogram, the agent mix and what was dropped.

Try it on the demo (the demo's groups are its --num-repeats):

    gymstream demo --keep-kafka --num-repeats 4
    python examples/online_trainer.py --group-size 4

Without --run-id it takes the newest run whose id begins with "demo-". It also works on a live
run: it waits for groups as workers finish them and stops when the run is complete.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence

from gymstream import (
    Group,
    GroupStream,
    GymstreamError,
    KafkaSettings,
    StreamOptions,
    TopicLayout,
    TopicSettings,
    load_layout,
    open_stream,
    read_manifests,
)

EPS = 1e-6


def grpo_advantages(rewards: Sequence[float]) -> list[float]:
    """(r - mean) / (std + eps) within one group (population std, as in GRPO)."""
    mean = statistics.fmean(rewards)
    std = statistics.pstdev(rewards)
    return [(r - mean) / (std + EPS) for r in rewards]


def train_step(step: int, batch: list[Group], version: int) -> None:
    """Stand-in for a policy update: show what the update would see."""
    rollouts = sum(len(g.rollouts) for g in batch)
    rewards = [r for g in batch for r in g.rewards]
    print(
        f"step {step:3d}  policy v{version}  {len(batch)} groups / {rollouts} rollouts  "
        f"mean reward {statistics.fmean(rewards):.3f}"
    )
    for g in batch:
        advantages = ", ".join(f"{a:+.2f}" for a in grpo_advantages(g.rewards))
        print(f"    {g.agent}/{g.task_index}: rewards {g.rewards}  advantages [{advantages}]")


def report(stream: GroupStream) -> None:
    stats = stream.stats
    print("\nstaleness of trained rollouts (policy versions behind the trainer):")
    rows = [(str(k), n) for k, n in sorted(stats.staleness.items())]
    if stats.unknown_staleness:
        rows.append(("unknown", stats.unknown_staleness))  # rollouts stamped with no version
    width = max((n for _, n in rows), default=1)
    for label, n in rows:
        print(f"  {label:>7}  {'#' * max(1, round(40 * n / width))} {n}")
    mix = ", ".join(f"{a} {s:.0%}" for a, s in stats.mix().items()) or "nothing"
    print(f"mix: {mix}")
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(stats.dropped.items())) or "nothing"
    print(f"dropped: {dropped}")


async def newest_demo_run(kafka: KafkaSettings, layout: TopicLayout) -> str:
    demos = [m for m in await read_manifests(kafka, layout) if m.run_id.startswith("demo-")]
    if not demos:
        raise SystemExit("no demo run found: run `gymstream demo --keep-kafka --num-repeats 4`")
    return demos[-1].run_id


async def train(args: argparse.Namespace) -> None:
    kafka = KafkaSettings(bootstrap=args.bootstrap) if args.bootstrap else KafkaSettings()
    topics = TopicSettings(prefix=args.topic_prefix) if args.topic_prefix else TopicSettings()
    layout = load_layout(prefix=topics.prefix)
    run_id = args.run_id or await newest_demo_run(kafka, layout)
    options = StreamOptions(
        run_id=run_id,
        group_size=args.group_size,
        consumer=args.consumer,
        from_beginning=args.from_beginning,
        max_staleness=args.max_staleness,
        drop_zero_variance=args.drop_zero_variance,
    )
    print(f"training on run {run_id} (groups of {args.group_size}, consumer {args.consumer})")
    async with open_stream(kafka, layout, options) as stream:
        version = stream.policy_version or 0  # a resumed stream continues its saved version
        stream.set_policy_version(version)
        step = 0
        while batch := await stream.next_batch(args.batch_groups):
            train_step(step, batch, version)
            version += 1
            await stream.publish_policy_version(version)  # workers stamp new rollouts with it
            await stream.commit()  # after the update: a crash before here replays this batch
            step += 1
        report(stream)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", help="run to train on (default: the newest demo- run)")
    parser.add_argument("--group-size", type=int, default=4, help="the run's --num-repeats")
    parser.add_argument("--batch-groups", type=int, default=2, help="groups per update")
    parser.add_argument("--max-staleness", type=int, help="drop older rollouts (versions)")
    parser.add_argument("--drop-zero-variance", action="store_true", help="skip flat groups")
    parser.add_argument("--consumer", default="online-trainer", help="names the saved position")
    parser.add_argument("--from-beginning", action="store_true", help="ignore a saved position")
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: $GYMSTREAM_KAFKA_BOOTSTRAP)")
    parser.add_argument("--topic-prefix", help="topic prefix (default: gymstream)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(train(args))
    except GymstreamError as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
