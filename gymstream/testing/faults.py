"""Fault injection for the scripted model: latency with jitter, injected errors and hangs.

- ``latency_ms``: every answer is sent that long after its request arrived;
  ``latency_jitter_ms`` J spreads that wait uniformly over [latency - J, latency + J] (same mean),
  as a real model's latency varies: with a fixed wait, C concurrent rollouts get their answers
  in lockstep bursts of C, a worst case no real endpoint produces;
- ``error_rate``: that fraction of model requests get HTTP 500 or 503;
- ``hang_rate``: that fraction never get an answer (the server waits ``HANG_S``, past any sane
  client timeout, or until the client hangs up).

The fault draws come from ``random.Random(seed)`` in request-arrival order; the jitter has its
own stream, so turning jitter on does not shift the fault draws of a seed.
"""

from __future__ import annotations

import random

from gymstream.testing.connection import error_body

__all__ = ["HANG_S", "Faults"]

HANG_S = 3600.0
"""How long a hung request waits before it is answered (504) if the client is still there."""

_INJECTED_ERROR = error_body("scripted failure (error_rate)", "server_error")
_HANG_ANSWER = error_body("scripted hang ended (hang_rate)", "server_error")


class Faults:
    """The faults one server injects. Raises ``ValueError`` for out-of-range settings."""

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        latency_jitter_ms: float = 0.0,
        error_rate: float = 0.0,
        hang_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        if not 0 <= latency_jitter_ms <= latency_ms:
            raise ValueError(
                f"latency_jitter_ms must be between 0 and latency_ms ({latency_ms:g}), "
                f"got {latency_jitter_ms:g}"
            )
        for label, rate in (("error_rate", error_rate), ("hang_rate", hang_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{label} must be between 0 and 1, got {rate}")
        if error_rate + hang_rate > 1.0:
            raise ValueError("error_rate + hang_rate must not exceed 1")
        self.latency_s = latency_ms / 1000.0
        self.jitter_s = latency_jitter_ms / 1000.0
        self.error_rate = error_rate
        self.hang_rate = hang_rate
        self._rng = random.Random(seed)
        self._jitter_rng = random.Random(f"jitter-{seed}")

    def delay(self) -> float:
        """The wait before the next answer, in seconds (one jitter draw when jitter is on)."""
        if not self.jitter_s:
            return self.latency_s
        return self.latency_s + self._jitter_rng.uniform(-self.jitter_s, self.jitter_s)

    def inject(self) -> tuple[str, float, int, bytes] | None:
        """Draw the fate of one model request: None (answer it), or the injected answer as
        (kind for the stats, delay in s, status, body); kind is ``errors_injected`` or
        ``hangs_injected``."""
        if not (self.error_rate or self.hang_rate):
            return None
        draw = self._rng.random()
        if draw < self.error_rate:
            status = 500 if draw < self.error_rate / 2 else 503
            return "errors_injected", self.delay(), status, _INJECTED_ERROR
        if draw < self.error_rate + self.hang_rate:
            return "hangs_injected", HANG_S, 504, _HANG_ANSWER
        return None
