"""Readiness: named checks a process registers; ``/healthz`` is ready when every check passes.

A check is a cheap synchronous callable returning ``None`` when its part is ready, else one line
saying what is not (``"no partitions assigned"``, ``"model endpoint down for 42 s"``). A process
with no check registered yet is not ready: the worker and the sink register theirs when they
start, so a process that is still connecting answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["Check", "Readiness"]

log = logging.getLogger("gymstream.observe.health")

Check = Callable[[], str | None]


class Readiness:
    """The readiness checks of one process, by name (``worker/<agent>``, ``sink``, ...)."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        """Register (or replace) the check ``name``."""
        self._checks[name] = check

    def remove(self, name: str) -> None:
        self._checks.pop(name, None)

    def report(self) -> tuple[bool, dict[str, str]]:
        """(ready, per check: ``"ok"`` or what is not ready). A check that raises is not ready."""
        if not self._checks:
            return False, {"process": "starting: nothing registered yet"}
        states: dict[str, str] = {}
        for name, check in sorted(self._checks.items()):
            try:
                problem = check()
            except Exception as exc:  # boundary: a broken check is reported, never raised
                log.debug("readiness check %s raised", name, exc_info=True)
                problem = f"check failed: {type(exc).__name__}: {exc}"
            states[name] = "ok" if problem is None else problem
        return all(state == "ok" for state in states.values()), states
