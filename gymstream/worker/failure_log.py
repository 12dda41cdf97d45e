"""Rate-limited warnings about failed rollouts: one headline per failure class.

A model that is down fails every rollout: one warning each would bury the cause under thousands
of lines. Each rollout's failure is logged at INFO (``--verbose``); per class, the first one and
then at most one per ``interval_s`` is a WARNING that names the cause in words and counts the
rollouts it stands for. ``flush`` reports what is still uncounted. Per class, the failures not
yet warned about are a ``stage.streak.Streak``: its first failure warns when the class is due,
and each warning ends it with its count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gymstream.stage.streak import Streak
from gymstream.wire.messages import FailureClass

__all__ = ["FAILURE_LOG_INTERVAL_S", "FailureLog"]

log = logging.getLogger("gymstream.worker.failure_log")

FAILURE_LOG_INTERVAL_S = 10.0
"""At most one warning per failure class per this many seconds; each says how many it stands for."""

_HEADLINES: dict[str, str] = {
    FailureClass.MODEL_CONNECTION_ERROR: "model endpoint {url} is unreachable: check that the "
    "model server is up and that GYMSTREAM_MODEL_BASE_URL points at it",
    FailureClass.MODEL_TIMEOUT: "model endpoint {url} does not answer within "
    "GYMSTREAM_MODEL_TIMEOUT_S: the server may be overloaded or stuck",
    FailureClass.MODEL_HTTP_5XX: "model endpoint {url} answers with server errors (HTTP 5xx)",
    FailureClass.MODEL_HTTP_429: "model endpoint {url} keeps rate-limiting (HTTP 429): lower the "
    "concurrency",
    FailureClass.MODEL_HTTP_4XX: "model endpoint {url} rejects the requests (HTTP 4xx): check the "
    "model name, the API key and the request parameters",
}


class FailureLog:
    """Counts failures per class and warns about each class at most once per ``interval_s``.

    ``clock`` is monotonic seconds (injectable so the throttling is testable without waiting).
    """

    def __init__(
        self,
        model_url: str,
        interval_s: float = FAILURE_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_url = model_url
        self.interval_s = interval_s
        self.clock = clock
        self.unreported: dict[str, Streak] = {}
        self.latest: dict[str, str] = {}
        self.warned_at: dict[str, float] = {}

    def record(self, failure_class: str, rollout_id: str, message: str) -> None:
        """Log one failed rollout at INFO; warn if its class has not warned within the interval."""
        log.info("rollout %s failed: %s: %s", rollout_id, failure_class, message)
        streak = self.unreported.get(failure_class)
        if streak is None:
            streak = self.unreported[failure_class] = Streak(log, clock=self.clock)
        streak.hit()
        self.latest[failure_class] = f"rollout {rollout_id}: {message}"
        last = self.warned_at.get(failure_class)
        if last is None or self.clock() - last >= self.interval_s:
            self._warn(failure_class)

    def flush(self, *, due_only: bool = False) -> None:
        """Warn about every class with uncounted failures (``due_only``: whose interval is up)."""
        now = self.clock()
        for failure_class in [c for c, s in self.unreported.items() if s.active]:
            if not due_only or now - self.warned_at.get(failure_class, 0.0) >= self.interval_s:
                self._warn(failure_class)

    def _warn(self, failure_class: str) -> None:
        streak = self.unreported[failure_class]
        headline = _HEADLINES.get(failure_class, "rollouts are failing")
        last = self.warned_at.get(failure_class)
        now = self.clock()
        window = "" if last is None else f" in the last {now - last:.0f} s"
        self.warned_at[failure_class] = now
        streak.end(
            "%s; %d rollout(s) failed with %s%s (each is in the failures topic); latest: %s",
            headline.format(url=self.model_url),
            streak.count,
            failure_class,
            window,
            self.latest[failure_class],
        )
