"""The pure half of ``gymstream produce``: dataset rows -> the run's rollouts, rejects and counts.

No Kafka here (``producer.py`` is the Kafka loop): ``valid_rows`` reads and validates the input,
counting every row and writing each bad one to the rejects file; ``plan_rollouts`` expands rows
into rollouts (``_ng_task_index`` / ``_ng_rollout_index``, a rollout id unique in the run), skips
the ones a resume says are done, and applies the request overrides and the per-rollout seed;
``task_message`` is a planned rollout as it goes on the wire; ``RoundRobin`` spreads an agent's
tasks evenly over its topic's partitions, whatever the keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gymstream.errors import ConfigError, RowError
from gymstream.nemo_gym.outputs.output_row import materialized_row
from gymstream.nemo_gym.rows.overrides import apply_overrides, with_extra_body_seed
from gymstream.nemo_gym.rows.reader import InputRow, read_rows
from gymstream.nemo_gym.rows.rollouts import expand
from gymstream.nemo_gym.rows.validation import PARAMS_FIELD
from gymstream.runs.pacing import Pacer
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import rollout_id
from gymstream.wire.messages import TaskMessage

__all__ = [
    "JsonlFile",
    "PlannedRollout",
    "ProduceOptions",
    "ProduceReport",
    "RoundRobin",
    "check_paths",
    "plan_rollouts",
    "read_input",
    "record_reject",
    "reject_record",
    "task_message",
    "unsendable_task",
    "valid_rows",
]


@dataclass(frozen=True)
class ProduceOptions:
    """What to publish; mirrors the CLI options of ``gymstream produce``."""

    input_path: Path
    run_id: str
    known_agents: Collection[str]
    default_agent: str | None = None
    num_repeats: int | Mapping[str, int] = 1
    limit: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    fail_fast: bool = False
    rejects_path: Path | None = None
    materialized_path: Path | None = None
    skip_rollouts: Collection[str] = frozenset()
    attempts: Mapping[str, int] = field(default_factory=dict)
    policy_version: int | None = None
    pacer: Pacer | None = None  # pacing: at most pacer.max_ahead groups ahead of the trainer
    # NeMo Gym's optional per-rollout seed: responses_create_params.seed = base + rollout index
    rollout_seed: int | None = None
    # NeMo Gym's agent_map (gymstream.nemo_gym.rows.routing): re-route rows before they are checked
    agent_map: Mapping[str, str] = field(default_factory=dict)
    # NeMo Gym's num_repeats_add_seed: metadata.extra_body's seed = the rollout index
    num_repeats_add_seed: bool = False
    # what defines the run (produce/fingerprint.py, set by produce/preflight.py): the manifest
    # records it, and a run id reused with another definition is refused
    definition: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ProduceReport:
    """Counts of one produce run; ``expected`` is what the sink must account for."""

    run_id: str
    published: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    rows: int = 0
    elapsed_s: float = 0.0
    stopped_at: RowError | None = None

    @property
    def expected(self) -> dict[str, int]:
        agents = set(self.published) | set(self.skipped)
        return {a: self.published[a] + self.skipped[a] for a in sorted(agents)}


class JsonlFile:
    """An output JSONL file: opened (parents made) at once, or on the first write when ``lazy``
    (so that no empty rejects file appears for a clean input); ``None`` path: writes nothing."""

    def __init__(self, path: Path | None, *, lazy: bool = False) -> None:
        self._path = path
        self._handle: IO[bytes] | None = None
        if path is not None and not lazy:
            self._open(path)

    def _open(self, path: Path) -> IO[bytes]:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("wb")
        return self._handle

    def write(self, record: Mapping[str, Any]) -> None:
        if self._path is None:
            return
        handle = self._handle if self._handle is not None else self._open(self._path)
        handle.write(ENCODER.encode(record) + b"\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def check_paths(options: ProduceOptions) -> None:
    """ConfigError when a file produce writes is its input: writing it would destroy it."""
    source = options.input_path.resolve()
    for option, path in (
        ("--rejects", options.rejects_path),
        ("materialized inputs", options.materialized_path),
    ):
        if path is not None and path.resolve() == source:
            raise ConfigError(
                f"{option} {path} is the input file; writing it would destroy the input: "
                "choose another path"
            )


def reject_record(item: RowError) -> dict[str, Any]:
    """A rejects-file line: where the bad row is, which field, and the whole message."""
    return {"line": item.line, "field": item.field, "error": str(item)}


def read_input(options: ProduceOptions) -> Iterator[InputRow | RowError]:
    """The input's rows as ``options`` read them (default agent, known agents, limit,
    agent_map), each a row or its error: the one reading of produce and its preflight."""
    return read_rows(
        options.input_path,
        default_agent=options.default_agent,
        known_agents=options.known_agents,
        limit=options.limit,
        agent_map=options.agent_map,
    )


def valid_rows(
    options: ProduceOptions,
    report: ProduceReport,
    rejects: JsonlFile,
    on_reject: Callable[[RowError], None] | None = None,
) -> Iterator[InputRow]:
    """The input's valid rows, streamed; each bad one is counted, passed to ``on_reject`` and
    written to ``rejects``. With ``fail_fast`` the first bad row ends the stream and is kept in
    ``report.stopped_at``."""
    for item in read_input(options):
        if isinstance(item, InputRow):
            report.rows += 1
            yield item
            continue
        if record_reject(item, options, report, rejects, on_reject):
            return


def record_reject(
    item: RowError,
    options: ProduceOptions,
    report: ProduceReport,
    rejects: JsonlFile,
    on_reject: Callable[[RowError], None] | None,
) -> bool:
    """Count a bad row, tell ``on_reject``, write it to ``rejects``; True when production must
    stop there (``fail_fast``, the row kept in ``report.stopped_at``)."""
    report.rejected += 1
    if on_reject is not None:
        on_reject(item)
    rejects.write(reject_record(item))
    if options.fail_fast:
        report.stopped_at = item
    return options.fail_fast


@dataclass(frozen=True, slots=True)
class PlannedRollout:
    """One rollout to publish: its identity and its row, overrides and seed applied."""

    agent: str
    rollout_id: str
    task_index: int
    rollout_index: int
    row: dict[str, Any]
    line: int = 0
    """The input line the rollout comes from (1-based), for a reject that names it."""

    @property
    def starts_group(self) -> bool:
        """The first rollout of its task: where pacing lets a new group begin."""
        return self.rollout_index == 0

    def materialized(self) -> dict[str, Any]:
        """Its line in ``<stem>_materialized_inputs.jsonl``."""
        return materialized_row(
            self.row,
            agent=self.agent,
            task_index=self.task_index,
            rollout_index=self.rollout_index,
        )


def plan_rollouts(
    rows: Iterable[InputRow], options: ProduceOptions, report: ProduceReport
) -> Iterator[PlannedRollout]:
    """Expand ``rows`` (order a a b b c c); rollouts in ``skip_rollouts`` are counted in
    ``report.skipped`` and not yielded."""
    for rollout in expand(rows, num_repeats=options.num_repeats):
        rid = rollout_id(options.run_id, rollout.agent, rollout.task_index, rollout.rollout_index)
        if rid in options.skip_rollouts:
            report.skipped[rollout.agent] += 1
            continue
        row = apply_overrides(rollout.row, options.overrides) if options.overrides else rollout.row
        if options.rollout_seed is not None:
            row = apply_overrides(row, {"seed": options.rollout_seed + rollout.rollout_index})
        if options.num_repeats_add_seed:
            try:
                row = with_extra_body_seed(row, rollout.rollout_index)
            except ValueError as exc:
                where = f"{PARAMS_FIELD}.metadata.extra_body"
                raise RowError(options.input_path, rollout.line, where, str(exc)) from None
        yield PlannedRollout(
            rollout.agent, rid, rollout.task_index, rollout.rollout_index, row, rollout.line
        )


def task_message(planned: PlannedRollout, options: ProduceOptions, created_ms: int) -> TaskMessage:
    """The task message of ``planned``, with its attempt number (0 unless a resume retries it)."""
    return TaskMessage(
        run_id=options.run_id,
        rollout_id=planned.rollout_id,
        agent=planned.agent,
        task_index=planned.task_index,
        rollout_index=planned.rollout_index,
        row=planned.row,
        attempt=options.attempts.get(planned.rollout_id, 0),
        created_ms=created_ms,
        policy_version=options.policy_version,
    )


def unsendable_task(
    planned: PlannedRollout, options: ProduceOptions, size: int | None, limit: int, topic: str
) -> RowError:
    """The reject of a row whose task message (``size`` bytes) would not fit on ``topic``, or
    (``size`` None) cannot be encoded at all: nested deeper than the encoder can go."""
    problem = (
        "its task message is nested too deeply to encode (Python's recursion limit); "
        "flatten the row"
        if size is None
        else f"its task message is {size} bytes, over the {limit} bytes a record on {topic} "
        "may carry (the topic's max.message.bytes); shorten the row or raise the topic's limit"
    )
    return RowError(options.input_path, planned.line, "<line>", problem)


class RoundRobin:
    """Each topic's partitions in turn, from the first: an even spread whatever the keys."""

    def __init__(self) -> None:
        self._partitions: dict[str, list[int]] = {}
        self._sent: Counter[str] = Counter()

    def __contains__(self, topic: str) -> bool:
        return topic in self._partitions

    def add(self, topic: str, partitions: Iterable[int]) -> None:
        found = sorted(partitions)
        if not found:
            raise ValueError(f"topic {topic} has no partitions")
        self._partitions[topic] = found

    def next(self, topic: str) -> int:
        """The partition for the next message to ``topic`` (``add`` it first)."""
        parts = self._partitions[topic]
        partition = parts[self._sent[topic] % len(parts)]
        self._sent[topic] += 1
        return partition
