"""How a command logs: text lines (default) or JSON lines for log shippers (``--log-format``).

The format is chosen once per process: the global ``--log-format`` option (``choose_format``,
from the ``gymstream`` callback) wins over ``GYMSTREAM_LOG_FORMAT`` (``DisplaySettings``).
A JSON line is one object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
``message``, then every extra field the record was given (``log.info(..., extra={...})``), and
``exception`` (the formatted traceback) when there is one.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, Literal

__all__ = [
    "PROGRESS_LOGGER",
    "JsonFormatter",
    "LogFormat",
    "choose_format",
    "chosen_format",
    "configure_logging",
]

LogFormat = Literal["text", "json"]
PROGRESS_LOGGER = "gymstream.progress"
"""Progress lines when stderr is not a terminal: logged at INFO, shown without --verbose."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_chosen: LogFormat | None = None
_handler: logging.Handler | None = None
# what every LogRecord has: anything else on a record came from ``extra``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module doc); values JSON cannot hold become str."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]  # of TextIO, as typeshed has it
    """Writes to whatever ``sys.stderr`` is now: a live display redirects it, so a log line
    goes above the live line instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def choose_format(value: LogFormat | None) -> None:
    """The global ``--log-format`` (None: the environment's, or text)."""
    global _chosen
    _chosen = value


def chosen_format() -> LogFormat | None:
    """What ``--log-format`` chose, if it was given."""
    return _chosen


class _FencedCommits(logging.Filter):
    """Drops aiokafka's ERROR per refused commit of a fenced member ("OffsetCommit failed ...
    group error (UnknownMemberIdError), will rejoin": 24 of them after a thawed worker's own
    warning). The worker says it once per streak, with the cause (``worker/loop._commit``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.ERROR
            and str(record.msg).startswith("OffsetCommit failed")
            and "group error" in str(record.msg)
        )


def configure_logging(verbose: bool, log_format: LogFormat) -> None:
    """One root handler on stderr in ``log_format``; INFO with ``verbose``, else WARNING (the
    progress logger always INFO)."""
    global _handler
    logging.getLogger("aiokafka").setLevel(logging.INFO if verbose else logging.CRITICAL)
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    if not any(isinstance(f, _FencedCommits) for f in coordinator.filters):
        coordinator.addFilter(_FencedCommits())
    logging.getLogger(PROGRESS_LOGGER).setLevel(logging.INFO)
    root = logging.getLogger()
    if any(h is not _handler for h in root.handlers):
        return  # someone else (a test harness) owns the root logger: as logging.basicConfig
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = _Stderr()
    text = logging.Formatter(TEXT_FORMAT)
    _handler.setFormatter(JsonFormatter() if log_format == "json" else text)
    root.addHandler(_handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
