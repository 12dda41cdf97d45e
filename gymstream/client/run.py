"""The rollout client: NeMo Gym rows in, ``(row, result)`` out as each rollout completes.

::

    async with RolloutClient(config, kafka=kafka) as client:
        async for row, result in client.run(rows, policy_version=3):
            train_on(row, result["reward"], result["response"])

Each ``run`` is a gymstream run with its own id (``run_id=``, or a fresh one), its manifest on
the runs topic and its policy version, put through the pipeline every command uses: ``produce``
publishes the rows as tasks (identical rows share a task index, as in NeMo Gym), workers run
them, and a trainer stream (``trainer.stream``, one rollout per unit) reads the results and
failures back, from where the topics ended when the run began. ``result`` is NeMo Gym's ``/run``
result; a failure raises ``RolloutFailedError`` or, with ``route_failures_to_sidecar``, is a
failure row (``outcome.py``).

Workers: those already serving an agent anywhere are used; for an agent no worker serves, the
client starts its own (``workers.py``: in this process, or ``worker_processes`` per agent) and
logs it; ``workers="always"`` / ``"never"`` force either way. ``close()`` stops them.

Stopping cleanly. A run left early (the caller breaks out, or a rollout failure is raised) is
drained before ``run``'s iterator closes: the rollouts already published still run, and their
results are read and dropped, so no task of it waits in a topic for a later worker to execute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

import msgspec
from aiokafka.errors import KafkaError

from gymstream.client.outcome import RolloutFailedError, failure_result, run_result
from gymstream.client.workers import OwnWorkers, WorkerMode
from gymstream.errors import ConfigError, RowError
from gymstream.kafka.clients import build_consumer, client_options, topic_partitions
from gymstream.kafka.topics import TopicLayout, apply_topics, load_layout, private_namespace
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.outputs.output_row import ROLLOUT_INDEX, TASK_INDEX, agent_of
from gymstream.nemo_gym.rows.reader import read_rows
from gymstream.produce.producer import ProduceOptions, ProduceReport, produce
from gymstream.runs.scope import drop_private_scope, is_private
from gymstream.settings import KafkaSettings, RolloutSettings, ScopeSettings
from gymstream.trainer.grouping import Group, UnitKey
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.stream import GroupStream
from gymstream.wire.records import StreamProgress

__all__ = ["RolloutClient", "new_run_id"]

log = logging.getLogger("gymstream.client")

_CONSUMER = "client"
_POLL_S = 0.5  # how often a waiting run looks at its workers' health


def client_layout(layout: TopicLayout, namespace: str | None, scope_id: str) -> TopicLayout:
    """Where a client's tasks go (docs/scopes.md): ``namespace``, else a layout the caller
    scoped already, else ``GYMSTREAM_NAMESPACE``, else the client's own private namespace, so
    that its tasks are never taken by workers it did not start."""
    if namespace is not None:
        return layout.scoped(namespace)
    if not layout.shared:
        return layout
    chosen = ScopeSettings().namespace
    return layout.scoped(chosen or private_namespace(scope_id))


def new_run_id(prefix: str = "client") -> str:
    """A fresh run id: ``<prefix>-<UTC time>-<random>``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


class RolloutClient:
    """Runs batches of NeMo Gym rows through gymstream; see the module doc.

    ``config``: the agents (the same ``--config`` as ``collect``); ``kafka`` / ``layout``:
    default from the environment (``GYMSTREAM_KAFKA_*``) and the default topic prefix;
    ``settings``: the workers' model, retry and worker settings (default: the environment's).
    """

    def __init__(
        self,
        config: GymConfig,
        *,
        kafka: KafkaSettings | None = None,
        layout: TopicLayout | None = None,
        settings: RolloutSettings | None = None,
        workers: WorkerMode = "auto",
        worker_processes: int = 0,
        concurrency: int | None = None,
        model_overrides: Mapping[str, Any] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.config = config
        self.kafka = kafka or KafkaSettings()
        self._scope_id = f"client-{uuid.uuid4().hex[:12]}"
        self.layout = client_layout(layout or load_layout(), namespace, self._scope_id)
        self.mode: WorkerMode = workers
        self._workers = OwnWorkers(
            self.kafka,
            self.layout,
            config,
            settings=settings or RolloutSettings.from_environment(),
            processes=worker_processes,
            concurrency=concurrency,
            model_overrides=model_overrides,
        )
        self._started = False

    async def start(self) -> None:
        """Create the topics the agents need (idempotent)."""
        await apply_topics(client_options(self.kafka), self.layout, self.config.agents)
        self._started = True

    async def close(self) -> None:
        """Stop the workers this client started (each settles, commits and leaves); a private
        namespace's task topics go with them (nothing waits there: every run was drained)."""
        await self._workers.stop()
        if is_private(self._scope_id, self.layout.namespace) and self._started:
            try:
                await drop_private_scope(client_options(self.kafka), self.layout, self._scope_id)
            except (ConfigError, KafkaError) as exc:
                log.warning("the client's private task topics stay (%s)", exc)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.close()

    @property
    def own_workers(self) -> list[str]:
        """The agents this client runs workers for."""
        return self._workers.agents

    async def run(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        run_id: str | None = None,
        policy_version: int | None = None,
        route_failures_to_sidecar: bool = False,
    ) -> AsyncGenerator[tuple[dict[str, Any], dict[str, Any]], None]:
        """Run every row once; yield ``(row, result)`` as each rollout completes (see the
        module doc). ``row`` is the caller's own object. Close the iterator
        (``contextlib.aclosing``) when leaving it early: the run is drained then."""
        if not self._started:
            await self.start()
        given = list(rows)
        if not given:
            return
        run = _Run(self, given, run_id or new_run_id(), policy_version)
        async with contextlib.aclosing(run.outcomes(route_failures_to_sidecar)) as outcomes:
            async for pair in outcomes:
                yield pair

    async def _ensure_workers(self, agent: str) -> None:
        await self._workers.ensure([agent], self.mode)

    def _check_workers(self) -> None:
        self._workers.check()


class _Run:
    """One ``RolloutClient.run``: publish, then read the outcomes back by position."""

    def __init__(
        self,
        client: RolloutClient,
        rows: list[Mapping[str, Any]],
        run_id: str,
        policy_version: int | None,
    ) -> None:
        self.client = client
        self.rows = rows
        self.run_id = run_id
        self.policy_version = policy_version
        self.positions: dict[UnitKey, int] = {}
        self.produced: ProduceReport | None = None

    async def outcomes(
        self, route_failures_to_sidecar: bool
    ) -> AsyncGenerator[tuple[dict[str, Any], dict[str, Any]], None]:
        client = self.client
        stream = self._stream(await _end_offsets(client.kafka, client.layout))
        # the stream's clients start while the rows are published: a run pays one set-up, not two
        opening = asyncio.create_task(stream.start(), name=f"client-stream-{self.run_id}")
        try:
            try:
                await self._publish()
            finally:
                await asyncio.wait({opening})  # never left running
            opening.result()
            remaining = set(self.positions.values())
            try:
                while remaining:
                    unit = await self._next(stream)
                    position = self.positions[unit.key]
                    remaining.discard(position)
                    yield self._pair(unit, position, route_failures_to_sidecar)
            finally:
                if remaining:
                    await self._drain(stream, remaining)
        finally:
            await stream.close()

    def _stream(self, start: dict[str, dict[int, int]]) -> GroupStream:
        """The run's results, one rollout per unit, read from where the topics ended at
        ``start`` (nothing of a run begun now lies below)."""
        layout = self.client.layout
        options = StreamOptions(
            run_id=self.run_id,
            unit="rollout",
            incomplete="deliver",
            deliver_failed=True,
            consumer=_CONSUMER,
            poll_ms=50,
        )
        resume = StreamProgress(
            run_id=self.run_id,
            consumer=_CONSUMER,
            unit="rollout",
            group_size=1,
            results=start[layout.results],
            failures=start[layout.failures],
        )
        return GroupStream(self.client.kafka, layout, options, resume_from=resume)

    async def _publish(self) -> None:
        """Publish the rows as one run's tasks; learn which unit is which row."""
        client = self.client
        rejects: list[RowError] = []
        with tempfile.TemporaryDirectory(prefix="gymstream-client-") as tmp:
            rows_path, expanded_path = Path(tmp) / "rows.jsonl", Path(tmp) / "expanded.jsonl"
            rows_path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in self.rows))
            _check_rows(rows_path, client.config)  # before any task is sent
            options = ProduceOptions(
                input_path=rows_path,
                run_id=self.run_id,
                known_agents=list(client.config.agents),
                fail_fast=True,
                materialized_path=expanded_path,
                policy_version=self.policy_version,
            )
            self.produced = await produce(
                client.kafka,
                client.layout,
                options,
                on_reject=rejects.append,
                on_agent=client._ensure_workers,
            )
            if rejects:
                bad = rejects[0]
                raise ConfigError(f"row {bad.line - 1}: {bad.field}: {bad.problem}")
            for position, line in enumerate(expanded_path.read_bytes().splitlines()):
                stored = msgspec.json.decode(line)
                key = UnitKey(agent_of(stored), stored[TASK_INDEX], stored[ROLLOUT_INDEX])
                self.positions[key] = position
        log.info(
            "run %s: %d rows published (policy version %s)",
            self.run_id,
            len(self.positions),
            self.policy_version,
        )

    async def _next(self, stream: GroupStream) -> Group:
        while True:
            self.client._check_workers()
            unit = await stream.next_group(timeout_s=_POLL_S)
            if unit is not None:
                return unit
            if stream.finished:
                raise RuntimeError(f"run {self.run_id} ended with rollouts missing")

    def _pair(
        self, unit: Group, position: int, route_failures_to_sidecar: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        row: Any = self.rows[position]
        if unit.rollouts:
            return row, run_result(unit.rollouts[0])
        failure = unit.failures[0]
        if not route_failures_to_sidecar:
            raise RolloutFailedError(failure, position)
        return row, failure_result(failure)

    async def _drain(self, stream: GroupStream, remaining: set[int]) -> None:
        """Read the run to its end, dropping what arrives: none of its tasks stays behind."""
        log.warning(
            "run %s left with %d rollouts in flight: draining them", self.run_id, len(remaining)
        )
        with contextlib.suppress(Exception):  # a dead worker ends the drain (check raises)
            while remaining:
                unit = await self._next(stream)
                remaining.discard(self.positions[unit.key])


def _check_rows(path: Path, config: GymConfig) -> None:
    """ConfigError naming the first bad row (its index in the rows given), if any."""
    for item in read_rows(path, default_agent=None, known_agents=list(config.agents)):
        if isinstance(item, RowError):
            raise ConfigError(f"row {item.line - 1}: {item.field}: {item.problem}")


async def _end_offsets(kafka: KafkaSettings, layout: TopicLayout) -> dict[str, dict[int, int]]:
    """The results and failures topics' end offsets: a run started now has nothing below."""
    consumer = build_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        ends: dict[str, dict[int, int]] = {}
        for topic in (layout.results, layout.failures):
            tps = await topic_partitions(consumer, topic)
            offsets = await consumer.end_offsets(tps)
            ends[topic] = {tp.partition: offset for tp, offset in offsets.items()}
        return ends
    finally:
        await consumer.stop()
