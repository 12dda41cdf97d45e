"""A model outage, as one worker process sees it: pause intake, retry in-flight rollouts, resume.

When a rollout's model calls fail as an endpoint that is down (connection refused, 5xx, timeouts)
after the model client's own retries, that is an *outage* unless the model answered another
rollout meanwhile (then the failure is the rollout's own). During an outage the worker takes no
new tasks (they wait in Kafka, not in the failures file) and each rollout in flight is retried
as a whole after a capped, jittered backoff; its retries are the probes. The first answer ends
the outage and the worker takes tasks again. An outage older than ``budget_s`` ends in typed
failures as before: rollouts stop retrying and intake resumes, so the run completes (with
failures) instead of waiting forever. Each state change is logged once.

Pure but for the clock and the log: ``clock`` is injectable, so tests drive time.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable

from gymstream.errors import GymstreamError
from gymstream.wire.messages import FailureClass

__all__ = ["OUTAGE_CLASSES", "ModelOutage", "is_outage", "with_outage"]

log = logging.getLogger("gymstream.worker.outage")

OUTAGE_CLASSES = frozenset(
    {
        FailureClass.MODEL_CONNECTION_ERROR,
        FailureClass.MODEL_HTTP_5XX,
        FailureClass.MODEL_TIMEOUT,
    }
)
"""Failure classes that say the endpoint is down rather than that the request is wrong."""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the model endpoint is down (a class in ``OUTAGE_CLASSES``)."""
    return isinstance(exc, GymstreamError) and exc.failure_class in OUTAGE_CLASSES


class ModelOutage:
    """The outage state of one worker's model endpoint; see the module docstring."""

    def __init__(
        self,
        budget_s: float,
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_s = budget_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self.since: float | None = None
        """When the current outage began (None: the model answers)."""
        self._last_answer = float("-inf")
        self._over_budget_logged = False

    @property
    def paused(self) -> bool:
        """Take no new tasks: an outage is on and still within its budget."""
        return self.since is not None and self._clock() - self.since < self.budget_s

    def answered(self) -> None:
        """The model answered a rollout (whatever the rollout's outcome): the outage is over."""
        self._last_answer = self._clock()
        if self.since is not None:
            log.warning(
                "model endpoint answers again after %.0f s: taking tasks again",
                self._last_answer - self.since,
            )
            self.since = None
            self._over_budget_logged = False

    def should_retry(self, exc: BaseException, started: float, *, first: bool) -> bool:
        """After an outage-class failure of an attempt begun at ``started`` (this clock): True
        to retry the rollout after ``backoff``; False to let it fail as it is.

        If the model answered others during the attempt, the failure is the rollout's own: one
        more try when it was its first, then it fails."""
        now = self._clock()
        if self._last_answer > started:
            return first
        if self.since is None:
            self.since = now
            log.warning(
                "model endpoint is down (%s): pausing intake; rollouts in flight retry for up "
                "to %.0f s (GYMSTREAM_RETRY_OUTAGE_BUDGET_S)",
                exc,
                self.budget_s,
            )
        if now - self.since < self.budget_s:
            return True
        if not self._over_budget_logged:
            self._over_budget_logged = True
            log.error(
                "model endpoint down for %.0f s, over the outage budget of %.0f s: rollouts "
                "fail as %s from now on, until it answers",
                now - self.since,
                self.budget_s,
                FailureClass(getattr(exc, "failure_class", FailureClass.MODEL_UNAVAILABLE)),
            )
        return False

    def note(self) -> str:
        """The state in words for a progress line ("" while the model answers)."""
        if self.since is None:
            return ""
        down_s = self._clock() - self.since
        if down_s < self.budget_s:
            return f"model down for {down_s:.0f} s, intake paused"
        return (
            f"model down for {down_s:.0f} s, over its {self.budget_s:.0f} s budget: rollouts fail"
        )

    def backoff(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (0-based): exponential, capped, full jitter."""
        cap = min(self.backoff_max_s, self.backoff_initial_s * 2**retry)
        return random.uniform(cap / 2, cap)  # jitter, not cryptography

    def now(self) -> float:
        return self._clock()


def with_outage(outages: Iterable[ModelOutage | None], note: str) -> str:
    """A progress line's ``note`` after the first outage of ``outages`` that is on ("model down
    for 42 s, intake paused; mean reward 0.50"): the state shows while it lasts."""
    down = [n for n in (o.note() for o in outages if o is not None) if n]
    return "; ".join([*down[:1], *([note] if note else [])])
