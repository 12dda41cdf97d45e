"""Check before publishing: everything ``produce`` and ``collect`` can check, before the first
message leaves, so that a mistake is one ``error:`` line within seconds and nothing is on Kafka.

In order (the cheapest first):

1. the rows (one read of the input: which agents they name; with ``--fail-fast`` the first bad
   row stops here, before anything is published);
2. the agents those rows name exist in the config;
3. (``produce``) the topics exist: the runs topic and each agent's task topic, in one metadata
   request (it used to wait 31 s and print ``UnknownTopicOrPartitionError``);
4. (``collect``, which runs the workers) each agent's NeMo Gym servers have an address and
   answer ``/health``, and its model endpoint answers (``rollout/model/reachable.py``);
5. the run id: when the runs topic already has a manifest for it with another definition
   (``fingerprint.py``), it is refused, saying what differs; with the same definition it is a
   resume, as before. A manifest from before definitions were recorded is accepted.

``preflight`` returns the options to produce with, their ``definition`` set (the producer
records it in the manifest). Raises ``ConfigError`` / ``RowError`` with the one line to print.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer
from gymstream.kafka.topics import TopicLayout
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.rows.reader import InputRow
from gymstream.produce.fingerprint import differences, file_digest, run_definition
from gymstream.produce.plan import ProduceOptions, read_input
from gymstream.rollout.connect import check_agent
from gymstream.rollout.model.reachable import model_problem
from gymstream.rollout.plan import AgentPlan, AgentPlans
from gymstream.runs.tail import RunsTail
from gymstream.settings import KafkaSettings, RolloutSettings
from gymstream.wire.keys import manifest_key

__all__ = ["RowScan", "check_run_id", "missing_topics", "preflight", "scan_rows"]


@dataclass
class RowScan:
    """One read of the input: the agents its valid rows name, and how many were bad."""

    agents: set[str] = field(default_factory=set)
    rows: int = 0
    rejected: int = 0


def scan_rows(options: ProduceOptions) -> RowScan:
    """Read and validate every row (nothing is kept but the agent names); with ``fail_fast``
    the first bad row is a ConfigError naming it, before anything is published."""
    scan = RowScan()
    for item in read_input(options):
        if isinstance(item, InputRow):
            scan.rows += 1
            scan.agents.add(item.agent)
        elif options.fail_fast:
            raise ConfigError(
                f"{item}; stopped at the first bad row (--fail-fast): nothing was published"
            ) from item
        else:
            scan.rejected += 1
    return scan


async def missing_topics(kafka: KafkaSettings, names: list[str]) -> list[str]:
    """Which of ``names`` the cluster does not have (one metadata request)."""
    consumer = build_consumer(kafka, group_id=None)
    try:
        await consumer.start()  # inside the try: a failed start still closes the client
        present = await consumer.topics()
    finally:
        await consumer.stop()
    return [name for name in names if name not in present]


async def check_run_id(
    kafka: KafkaSettings, layout: TopicLayout, run_id: str, definition: Mapping[str, str]
) -> bool:
    """ConfigError when ``run_id`` names a run with another definition; True when the run
    exists (same definition: a resume), False when it is new."""
    async with RunsTail(kafka, layout, keys=[manifest_key(run_id)]) as tail:
        await tail.read_to_end(kafka.request_timeout_ms / 1000)
    recorded = tail.manifest(run_id)
    if recorded is None:
        return False
    changed = differences(recorded.definition, definition) if recorded.definition else []
    if changed:
        raise ConfigError(
            f"run id {run_id} already names another run (from {recorded.input_path or '?'}): "
            f"{'; '.join(changed)} differ; nothing was published. Give this run a new "
            f"--run-id, or run exactly the same command to resume {run_id}"
        )
    return True


async def _check_agent(plan: AgentPlan, settings: RolloutSettings) -> None:
    await check_agent(plan, settings.server, settings.retry)  # servers' addresses and /health
    if plan.environment_kind == "remote_agent":
        return  # a remote agent calls its own model
    problem = await model_problem(plan.model)
    if problem is not None:
        raise ConfigError(
            f"agent '{plan.name}': its model does not answer ({problem}): start it, or point "
            "--model-base-url / GYMSTREAM_MODEL_BASE_URL / the config at a running one; "
            "nothing was published"
        )


async def preflight(
    kafka: KafkaSettings,
    layout: TopicLayout,
    options: ProduceOptions,
    config: GymConfig,
    *,
    servers: RolloutSettings | None = None,
    plans: AgentPlans | None = None,
    topics_applied_later: bool = False,
) -> ProduceOptions:
    """Check everything (module docstring); the options with their run definition set.

    ``servers`` and ``plans``: check each agent's servers and model (collect: its agents'
    plans, with these settings);
    ``topics_applied_later``: the caller creates the topics itself (collect), so a missing
    topic is not an error and a missing runs topic means a new run.
    """
    scan = await asyncio.to_thread(scan_rows, options)
    for agent in sorted(scan.agents):
        config.agent(agent)  # an agent the rows name but the config lacks: one line
    needed = [layout.runs, *(layout.tasks(a) for a in sorted(scan.agents))]
    missing = await missing_topics(kafka, needed)
    if missing and not topics_applied_later:
        raise ConfigError(
            f"topics missing on the broker: {', '.join(missing)}; create them with "
            "`gymstream topics apply` (with the same --config and --topic-prefix); "
            "nothing was published"
        )
    if servers is not None and plans is not None:
        await asyncio.gather(*(_check_agent(plans.plan(a), servers) for a in scan.agents))
    digest = await asyncio.to_thread(file_digest, options.input_path)
    definition = run_definition(options, config, scan.agents, digest)
    if layout.runs not in missing:
        await check_run_id(kafka, layout, options.run_id, definition)
    return dataclasses.replace(options, definition=definition)
