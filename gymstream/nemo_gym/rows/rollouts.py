"""Expand rows into rollouts with NeMo Gym's indices, and parse per-agent repeat counts.

``expand`` turns rows into rollouts in the order a a b b c c. Identical lines (same bytes once
surrounding whitespace is stripped, served by the same agent) share one ``_ng_task_index`` and
their rollout indices continue (0..n-1 for the first, n..2n-1 for the second), so that
(task_index, rollout_index) stays unique, as in NeMo Gym. Spotting duplicates means
remembering a 16-byte digest per distinct row: ``task_index.TaskIndex`` keeps up to 100,000 in
memory and the rest in a temporary SQLite table, so memory stays bounded whatever the file.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec

from gymstream.nemo_gym.rows.reader import InputRow
from gymstream.nemo_gym.rows.task_index import TaskIndex

__all__ = ["DEFAULT_REPEATS_KEY", "Rollout", "expand", "parse_repeats"]

DEFAULT_REPEATS_KEY: Final = "_default"
"""The key of a repeats map that covers the agents it does not name."""


class Rollout(msgspec.Struct, frozen=True):
    """One rollout to run.

    ``row`` is the input row unchanged, and the same dict object for every repeat of a line:
    copy it before changing it (``apply_overrides`` returns a new dict).
    """

    agent: str
    task_index: int
    rollout_index: int
    row: dict[str, Any]
    line: int


def expand(rows: Iterable[InputRow], *, num_repeats: int | Mapping[str, int]) -> Iterator[Rollout]:
    """Yield ``num_repeats`` rollouts per row, in order a a b b c c, with NeMo Gym indices.

    ``num_repeats`` is an int for every agent, or a map from agent name to count where
    ``"_default"`` (itself defaulting to 1) covers the agents not named. Task indices count
    distinct (agent, line) pairs from 0 in order of first appearance; see the module docstring.
    Raises ``ValueError`` at once if a count is not an int >= 1. Lazy in ``rows``.
    """
    return _expand(rows, _repeats_for(num_repeats))


def _repeats_for(num_repeats: int | Mapping[str, int]) -> Callable[[str], int]:
    def check(name: str, count: object) -> int:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"num_repeats for {name} must be an integer >= 1, got {count!r}")
        return count

    if isinstance(num_repeats, int):
        fixed = check("every agent", num_repeats)
        return lambda _agent: fixed
    counts = {agent: check(repr(agent), count) for agent, count in num_repeats.items()}
    default = counts.pop(DEFAULT_REPEATS_KEY, 1)
    return lambda agent: counts.get(agent, default)


def _expand(rows: Iterable[InputRow], repeats_for: Callable[[str], int]) -> Iterator[Rollout]:
    person_of: dict[str, bytes] = {}
    with contextlib.closing(TaskIndex()) as tasks:
        for row in rows:
            repeats = repeats_for(row.agent)
            person = person_of.get(row.agent)
            if person is None:
                person = person_of[row.agent] = _person(row.agent)
            digest = hashlib.blake2b(row.raw, digest_size=16, person=person).digest()
            task, first = tasks.assign(digest, repeats)
            for rollout_index in range(first, first + repeats):
                yield Rollout(
                    agent=row.agent,
                    task_index=task,
                    rollout_index=rollout_index,
                    row=row.row,
                    line=row.line,
                )


def _person(agent: str) -> bytes:
    """Blake2b's 16-byte personalisation from the agent name, so each agent has its own tasks.

    Names longer than 16 bytes are hashed down; a collision only merges two agents' identical
    lines into one task index, which still keeps (task, rollout) indices unique.
    """
    encoded = agent.encode()
    if len(encoded) <= 16:
        return encoded
    return hashlib.blake2b(encoded, digest_size=16).digest()


def parse_repeats(values: Sequence[str]) -> dict[str, int]:
    """Parse command-line ``AGENT=N`` options (``_default=N`` for the rest) into a map.

    Raises ``ValueError`` naming the bad option: no ``=``, an empty agent, a count that is not
    a whole number >= 1, or an agent given twice.
    """
    counts: dict[str, int] = {}
    for text in values:
        agent, sep, count_text = text.partition("=")
        agent = agent.strip()
        if not sep or not agent:
            raise ValueError(
                f"num_repeats {text!r}: expected AGENT=N, e.g. "
                "example_multi_step_simple_agent=8 or _default=4"
            )
        try:
            count = int(count_text.strip())
        except ValueError as exc:
            raise ValueError(
                f"num_repeats {text!r}: {count_text.strip()!r} is not a whole number"
            ) from exc
        if count < 1:
            raise ValueError(f"num_repeats {text!r}: the count must be at least 1, got {count}")
        if agent in counts:
            raise ValueError(f"num_repeats {text!r}: {agent!r} is given twice; give it once")
        counts[agent] = count
    return counts
