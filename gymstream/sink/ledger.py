"""The sink's pure step: decoded results and failures -> rows to append, each rollout once.

No Kafka, no files (``loop.py`` does both). A ``SinkLedger`` knows which rollouts of the run are
already in the output files (written, or failed), drops duplicates and other runs' messages,
turns the rest into the bytes of the rows to append, counts everything in a ``SinkReport``, and
says when the run is complete against its manifest.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gymstream.nemo_gym.outputs.output_row import failure_row
from gymstream.nemo_gym.outputs.rollout_set import RolloutSet
from gymstream.runs.models import mixed_models_line, model_label
from gymstream.sink.latency import Timings
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import rollout_id
from gymstream.wire.messages import FailureMessage, ResultMessage
from gymstream.wire.records import RunManifest

__all__ = ["Rows", "SinkLedger", "SinkReport"]


@dataclass
class SinkReport:
    """What the sink saw; ``complete`` when every expected rollout is accounted for."""

    run_id: str
    written: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failure_classes: Counter[str] = field(default_factory=Counter)
    reward_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    duplicates: int = 0
    superseded: int = 0
    resumed_rows: int = 0
    accounted: int = 0
    outputs: int = 0
    """Rollouts of the run in the output file (written now or before): 0 with ``accounted`` > 0
    means every rollout failed."""
    torn_bytes: int = 0
    expected: dict[str, int] | None = None
    complete: bool = False
    elapsed_s: float = 0.0
    timings: Timings = field(default_factory=Timings)
    """Latency histograms of the results written now (bounded memory: ``latency.py``)."""
    tokens: Counter[str] = field(default_factory=Counter)
    """Token usage summed over the results written now."""
    models: Counter[str] = field(default_factory=Counter)
    """Results written now per model that produced them (``wire.keys.model_label``); more than
    one key: the run's rows come from several models (``mixed_models`` says so)."""

    @property
    def mixed_models(self) -> str | None:
        """One line when the results written now come from more than one model, else None."""
        return mixed_models_line(self.run_id, self.models)

    @property
    def expected_total(self) -> int | None:
        return None if self.expected is None else sum(self.expected.values())

    @property
    def all_failed(self) -> bool:
        """The run is complete and not one rollout succeeded: never a success (exit 0)."""
        return self.complete and self.accounted > 0 and self.outputs == 0


@dataclass
class Rows:
    """The rows one batch adds: JSONL lines (without newline) for the output and failures."""

    output: list[bytes] = field(default_factory=list)
    failures: list[bytes] = field(default_factory=list)
    superseded: set[str] = field(default_factory=set)
    """Rollouts whose failure is in the failures file (or in ``failures``) and which now have a
    result: their failure rows go to the history file (a success wins; one file per rollout)."""


class SinkLedger:
    """Which rollouts of ``report.run_id`` are in the files, and the report that counts them.

    ``written`` and ``failed`` are the rollouts already in the output and failures files (on a
    restart, what ``read_rollouts`` found), kept as ``RolloutSet``s: about a bit per rollout,
    so the sink's memory does not grow ~250 bytes per rollout with the run. A result supersedes
    a failure of the same rollout, whose row the loop then moves to the history file
    (``Rows.superseded``). ``retried`` maps a rollout id to the attempt ``retry-failures``
    republished it with: a failure of an earlier attempt is ignored, since a new attempt is
    coming.
    """

    def __init__(
        self,
        report: SinkReport,
        written: RolloutSet | None = None,
        failed: RolloutSet | None = None,
        retried: Mapping[str, int] | None = None,
    ) -> None:
        self.report = report
        self.written = written if written is not None else RolloutSet()
        self.failed = failed if failed is not None else RolloutSet()
        run_id = report.run_id
        both = [r for r in self.failed if r in self.written]
        self.superseded_on_disk = {rollout_id(run_id, *r) for r in both}
        """Rollouts in both files on start (a crash while moving): move their failures."""
        for rollout in both:
            self.failed.discard(*rollout)
        self.retried = dict(retried or {})
        report.resumed_rows = report.accounted = self.accounted
        report.outputs = len(self.written)

    @property
    def accounted(self) -> int:
        """Rollouts of the run in the files: written or failed."""
        return len(self.written) + len(self.failed)

    def take(self, messages: Iterable[ResultMessage | FailureMessage]) -> Rows:
        """The rows to append for ``messages`` (in the order read), counted in the report."""
        rows = Rows()
        report = self.report
        written, failed = self.written, self.failed
        for message in messages:
            if message.run_id != report.run_id:
                continue
            key = (message.agent, message.task_index, message.rollout_index)
            if isinstance(message, ResultMessage):
                if not written.add(*key):
                    report.duplicates += 1
                    continue
                if failed.discard(*key):
                    rows.superseded.add(message.rollout_id)
                    report.superseded += 1
                rows.output.append(bytes(message.output))
                report.written[message.agent] += 1
                report.reward_sum[message.agent] += message.reward
                report.timings.add(message.timings)
                report.tokens.update(message.tokens)
                label = model_label(message.model_name, message.model_base_url)
                if label:
                    report.models[label] += 1
            else:
                if message.attempt < self.retried.get(message.rollout_id, 0):
                    continue  # an earlier attempt's failure; a new attempt is coming
                if key in written or not failed.add(*key):
                    report.duplicates += 1
                    continue
                rows.failures.append(ENCODER.encode(failure_row(message)))
                report.failed[message.agent] += 1
                report.failure_classes[message.failure_class] += 1
        report.accounted = self.accounted
        report.outputs = len(written)
        return rows

    def check_complete(self, manifest: RunManifest | None, *, follow: bool = False) -> bool:
        """Take the run's manifest; True (and ``report.complete``) when it says ``produced`` and
        every expected rollout is in the files. Never true when ``follow``."""
        if manifest is None or manifest.state != "produced":
            return False
        report = self.report
        report.expected = dict(manifest.expected)
        if report.accounted >= (report.expected_total or 0) and not follow:
            report.complete = True
        return report.complete
