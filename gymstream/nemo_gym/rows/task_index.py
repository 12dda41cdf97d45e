"""Task indices for rows: identical rows share one, in bounded memory.

NeMo Gym gives identical input lines one ``_ng_task_index`` and continues their rollout indices.
Spotting a repeat means remembering every distinct row seen, by a 16-byte digest. A Python dict
of those costs ~125 bytes per row (~120 MB per million distinct rows), so memory would grow with
the file. ``TaskIndex`` keeps the first ``max_in_memory`` digests in a dict (the fast path: most
datasets are smaller) and then moves them all to an SQLite table in a temporary directory,
whose page cache is bounded; lookups go there from then on. Either way a row's answer is the
same: ``assign`` returns (task index, first rollout index) for ``repeats`` more rollouts.

``close()`` removes the spill file (``with contextlib.closing(TaskIndex()) as index:``).
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

__all__ = ["MAX_IN_MEMORY", "TaskIndex"]

MAX_IN_MEMORY = 100_000
"""Distinct rows kept in a dict before spilling to disk (~12 MB)."""

_CACHE_KIB = 8 * 1024  # SQLite page cache: 8 MiB whatever the table's size


class TaskIndex:
    def __init__(self, max_in_memory: int = MAX_IN_MEMORY) -> None:
        self.max_in_memory = max_in_memory
        self.count = 0  # distinct rows seen: the next task index
        self._task: dict[bytes, int] = {}
        self._next: dict[int, int] = {}  # next rollout index, only for rows seen twice or more
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def assign(self, key: bytes, repeats: int) -> tuple[int, int]:
        """(task index, first rollout index) for ``repeats`` rollouts of the row ``key``."""
        if self._db is not None:
            return self._assign_on_disk(self._db, key, repeats)
        task = self._task.get(key)
        if task is None:
            if len(self._task) >= self.max_in_memory:
                return self._assign_on_disk(self._spill(), key, repeats)
            task = self._task[key] = self.count
            self.count += 1
            return task, 0
        first = self._next.get(task, repeats)  # the first time: after the first row's rollouts
        self._next[task] = first + repeats
        return task, first

    def _assign_on_disk(self, db: sqlite3.Connection, key: bytes, repeats: int) -> tuple[int, int]:
        found = db.execute("SELECT task, next FROM tasks WHERE key = ?", (key,)).fetchone()
        if found is None:
            task = self.count
            self.count += 1
            db.execute("INSERT INTO tasks VALUES (?, ?, ?)", (key, task, repeats))
            return task, 0
        task, first = found
        if first < 0:  # spilled after one row: its rollouts were 0..repeats-1
            first = repeats
        db.execute("UPDATE tasks SET next = ? WHERE key = ?", (first + repeats, key))
        return task, first

    def _spill(self) -> sqlite3.Connection:
        self._dir = tempfile.TemporaryDirectory(prefix="gymstream-tasks-")
        db = sqlite3.connect(Path(self._dir.name) / "tasks.sqlite", isolation_level=None)
        # a scratch table: no journal, no fsync; one transaction until close
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        db.execute(
            "CREATE TABLE tasks (key BLOB PRIMARY KEY, task INTEGER, next INTEGER) WITHOUT ROWID"
        )
        db.execute("BEGIN")
        # ``next`` of a row seen once is its first row's repeats, known when it repeats: -1
        db.executemany(
            "INSERT INTO tasks VALUES (?, ?, ?)",
            ((key, task, self._next.get(task, -1)) for key, task in self._task.items()),
        )
        self._task.clear()
        self._next.clear()
        self._db = db
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
