"""The exit codes of `produce`, `collect` and `sink`, named once, and the line that explains one.

A script can trust them:

- 0 ``OK``: every row was read and published, and (collect, sink) every rollout succeeded.
- 1 ``FAILED``: the run did not complete, or nothing succeeded (every row rejected, every
  rollout failed, rollouts missing), or Kafka could not be reached.
- 2 ``USAGE``: a usage or configuration mistake, found before anything was published (a bad
  option or file, a server or model that does not answer, a reused run id); also a
  ``--fail-fast`` stop at the first bad row.
- 3 ``PARTIAL``: completed, but some rows were rejected or some rollouts failed; the last line
  says how many and where they are.
- 130 / 143: collect stopped by SIGINT / SIGTERM (resume with the same ``--run-id``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["EXIT_CODES_HELP", "FAILED", "OK", "PARTIAL", "USAGE", "partial_problem"]

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2
PARTIAL: Final = 3

EXIT_CODES_HELP: Final = (
    "Exit codes: 0 every row ran and every rollout succeeded; 3 completed, but rows were "
    "rejected or rollouts failed (counts on the last line); 1 the run is incomplete or nothing "
    "succeeded; 2 a usage or configuration error (nothing published) or a --fail-fast stop."
)


def partial_problem(rejected: int, failed: int, rejects: Path | None, failures: Path | None) -> str:
    """The last line of a run that completed with rejected rows or failed rollouts."""
    parts = []
    if rejected:
        where = f" (see {rejects})" if rejects is not None else ""
        parts.append(f"{rejected} rows rejected{where}")
    if failed:
        where = f" (see {failures})" if failures is not None else ""
        parts.append(f"{failed} rollouts failed{where}")
    return "completed with problems: " + ", ".join(parts)
