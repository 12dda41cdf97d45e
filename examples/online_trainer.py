"""An online GRPO trainer loop over gymstream's trainer stream (with a stand-in for the update).

A plain, synchronous loop (``for batch in stream:``, a ``SyncStream``): it consumes a run's
rollouts as whole groups, computes GRPO advantages per group, turns each rollout into the token
sequence a policy-gradient loss trains on (``token_trajectory``: the trajectory's token ids, a
loss mask on generated tokens, the sampler's log-probs aligned to it), "trains" (prints), bumps
the policy version after every batch and publishes it for workers, then commits, so a restart
with the same --consumer continues exactly after the last trained batch. At the end it prints
the staleness histogram, the agent mix and what was dropped.

Try it on the demo (groups are each agent's --num-repeats, read from the run's manifest):

    gymstream demo --keep-kafka --num-repeats 4
    python examples/online_trainer.py

Without --run-id (or --run-prefix) it takes the newest run whose id begins with "demo-". It
also works on a live run: it waits for groups as workers finish them and stops when the run is
complete. Rows need token ids (a model run with return_token_id_information) to train on
tokens; without them it says so and shows rewards and advantages only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence

from gymstream import (
    Group,
    GymstreamError,
    KafkaSettings,
    StreamOptions,
    SyncStream,
    TokenTrajectory,
    TopicLayout,
    TopicSettings,
    TrajectoryError,
    load_layout,
    read_manifests,
    token_trajectory,
)

EPS = 1e-6


def grpo_advantages(rewards: Sequence[float]) -> list[float]:
    """(r - mean) / (std + eps) within one group (population std, as in GRPO)."""
    mean = statistics.fmean(rewards)
    std = statistics.pstdev(rewards)
    return [(r - mean) / (std + EPS) for r in rewards]


def loss_inputs(group: Group) -> list[tuple[TokenTrajectory, list[float]]] | None:
    """Each rollout's token sequence and per-token advantage (0 off the loss mask); None when
    the rows carry no token ids."""
    out = []
    for row, result, advantage in zip(
        group.rows(), group.rollouts, grpo_advantages(group.rewards), strict=True
    ):
        try:
            seq = token_trajectory(row, policy_version=result.policy_version)
        except TrajectoryError:
            return None
        out.append((seq, [advantage * m for m in seq.loss_mask]))
    # A torch trainer plugs in here, per sequence (or padded into one batch):
    #   ids, mask = torch.tensor(seq.token_ids), torch.tensor(seq.loss_mask)
    #   new_lp = policy(ids[None]).logits.log_softmax(-1)[0, :-1].gather(-1, ids[1:, None])
    #   ratio = (new_lp.squeeze(-1) - torch.tensor(seq.log_probs[1:])).exp()  # vs the sampler
    #   adv = torch.tensor(token_advantages[1:])
    #   loss = -(torch.minimum(ratio * adv, ratio.clamp(1 - 0.2, 1 + 0.2) * adv)
    #            * mask[1:]).sum() / mask[1:].sum()
    return out


def train_step(step: int, batch: list[Group], version: int) -> bool:
    """Stand-in for a policy update: show what the update would see. False: no token ids."""
    rollouts = sum(len(g.rollouts) for g in batch)
    rewards = [r for g in batch for r in g.rewards]
    print(
        f"step {step:3d}  policy v{version}  {len(batch)} groups / {rollouts} rollouts  "
        f"mean reward {statistics.fmean(rewards):.3f}"
    )
    with_tokens = True
    for g in batch:
        advantages = ", ".join(f"{a:+.2f}" for a in grpo_advantages(g.rewards))
        print(f"    {g.agent}/{g.task_index}: rewards {g.rewards}  advantages [{advantages}]")
        inputs = loss_inputs(g)
        if inputs is None:
            with_tokens = False
            continue
        for seq, _token_advantages in inputs:
            print(
                f"        {len(seq.token_ids)} tokens, {seq.generated_tokens} generated in "
                f"{seq.turns} turns, sampled by policy v{seq.policy_versions}"
            )
    return with_tokens


def report(stream: SyncStream) -> None:
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


def train(args: argparse.Namespace) -> None:
    kafka = KafkaSettings(bootstrap=args.bootstrap) if args.bootstrap else KafkaSettings()
    topics = TopicSettings(prefix=args.topic_prefix) if args.topic_prefix else TopicSettings()
    layout = load_layout(prefix=topics.prefix)
    run_id = ""
    if not args.run_prefix:
        run_id = args.run_id or asyncio.run(newest_demo_run(kafka, layout))
    options = StreamOptions(
        run_id=run_id,
        run_prefix=args.run_prefix or "",
        group_size=args.group_size,  # None: each agent's repeats, from the run's manifest
        consumer=args.consumer,
        from_beginning=args.from_beginning,
        max_staleness=args.max_staleness,
        drop_zero_variance=args.drop_zero_variance,
    )
    sizes = f"groups of {args.group_size}" if args.group_size else "groups as the manifest says"
    with SyncStream(kafka, layout, options, batch_size=args.batch_groups) as stream:
        print(f"training on {', '.join(stream.run_ids)} ({sizes}, consumer {args.consumer})")
        version = stream.policy_version or 0  # a resumed stream continues its saved version
        stream.set_policy_version(version)
        on_tokens = True
        for step, batch in enumerate(stream):
            on_tokens = train_step(step, batch, version) and on_tokens
            version += 1
            stream.publish_policy_version(version)  # workers stamp new rollouts with it
            stream.commit()  # after the update: a crash before here replays this batch
        if not on_tokens:
            print(
                "\nsome rows carry no token ids: start the model with token ids on "
                "(return_token_id_information) to train on token sequences"
            )
        report(stream)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", help="run to train on (default: the newest demo- run)")
    parser.add_argument("--run-prefix", help="train on every run whose id starts with this")
    parser.add_argument("--group-size", type=int, help="override the run's repeats per group")
    parser.add_argument("--batch-groups", type=int, default=2, help="groups per update")
    parser.add_argument("--max-staleness", type=int, help="drop older rollouts (versions)")
    parser.add_argument("--drop-zero-variance", action="store_true", help="skip flat groups")
    parser.add_argument("--consumer", default="online-trainer", help="names the saved position")
    parser.add_argument("--from-beginning", action="store_true", help="ignore a saved position")
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: $GYMSTREAM_KAFKA_BOOTSTRAP)")
    parser.add_argument("--topic-prefix", help="topic prefix (default: gymstream)")
    args = parser.parse_args(argv)
    try:
        train(args)
    except GymstreamError as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
