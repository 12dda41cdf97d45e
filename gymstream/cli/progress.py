"""Live progress of every long command (produce, worker, sink, collect, stream), one mechanism.

A command gives ``show_progress`` a function returning its current ``Figures`` (read from the
counts the library already keeps: a report or stats object, or one its callbacks fill). A
thread samples it, so the display moves even while the event loop is busy (produce reading and
validating a large file):

- stderr is a terminal and logs are text: a rich live line (bar, done / total, rate, ETA,
  failures, in flight, the command's own note), refreshed 4 times a second;
- otherwise (CI, a log file, ``--log-format json``): one log line every
  ``GYMSTREAM_PROGRESS_INTERVAL_S`` seconds (10 by default) on the ``gymstream.progress``
  logger, with the same figures (also as extra fields of a JSON line), and a last one at the end.

``--no-progress`` (``NoProgressOpt``) turns both off. Rates are since the display started (a
resumed run's rollouts from before do not count); the ETA is what is left at that rate.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gymstream.cli.configure import display_settings
from gymstream.cli.console import console
from gymstream.cli.logs import PROGRESS_LOGGER

__all__ = ["Figures", "NoProgressOpt", "Rates", "progress_line", "show_progress"]

log = logging.getLogger(PROGRESS_LOGGER)

NoProgressOpt = Annotated[
    bool, typer.Option("--no-progress", help="No live progress (nor periodic progress lines).")
]


@dataclass(frozen=True)
class Figures:
    """What a command has done so far; None where it does not know."""

    done: int
    total: int | None = None
    failed: int = 0
    failed_word: str = "failed"
    in_flight: int | None = None
    queued: int | None = None
    """Sent but not yet done (collect: published, not yet in the output)."""
    unit: str = "rollouts"
    before: int = 0
    """Of ``done``, what was done before this command started (a resume): not in the rate."""
    note: str = ""
    """Command-specific, e.g. the mean reward per agent, or rows read."""


class Rates:
    """Rate and ETA from successive samples of ``done`` (since the first sample)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start: tuple[float, int] | None = None

    def rate(self, done: int) -> float:
        """Per second since the first sample (0.0 at first)."""
        now = self._clock()
        if self._start is None:
            self._start = (now, done)
        started, first = self._start
        elapsed = now - started
        return (done - first) / elapsed if elapsed > 0 else 0.0

    @staticmethod
    def eta_s(figures: Figures, rate: float) -> float | None:
        if figures.total is None or rate <= 0:
            return None
        return max(0, figures.total - figures.done) / rate


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_line(label: str, figures: Figures, rate: float) -> str:
    """``label: 120/300 rollouts (40%), 12.5/s, ETA 0:14, 2 failed, 64 in flight; note``."""
    total = figures.total
    parts = [
        f"{figures.done}/{total} {figures.unit}"
        + (f" ({figures.done / total:.0%})" if total else "")
        if total is not None
        else f"{figures.done} {figures.unit}",
        f"{rate:.1f}/s",
    ]
    eta = Rates.eta_s(figures, rate)
    if eta is not None:
        parts.append(f"ETA {_duration(eta)}")
    parts.append(f"{figures.failed} {figures.failed_word}")
    if figures.in_flight is not None:
        parts.append(f"{figures.in_flight} in flight")
    if figures.queued is not None:
        parts.append(f"{figures.queued} queued")
    return f"{label}: {', '.join(parts)}" + (f"; {figures.note}" if figures.note else "")


def _fields(label: str, figures: Figures, rate: float) -> dict[str, Any]:
    """The figures as a log record's extra fields (a JSON line's keys)."""
    return {
        "command": label,
        "done": figures.done,
        "total": figures.total,
        "failed": figures.failed,
        "in_flight": figures.in_flight,
        "queued": figures.queued,
        "unit": figures.unit,
        "rate_per_s": round(rate, 3),
        "eta_s": None if (eta := Rates.eta_s(figures, rate)) is None else round(eta, 1),
    }


def _sample(figures: Callable[[], Figures]) -> Figures | None:
    """``figures()``, or None if the loop thread changed a dict while we read it (next time)."""
    try:
        return figures()
    except RuntimeError:  # "dictionary changed size during iteration"
        return None


class _Live:
    """The terminal display: re-rendered (and ``figures`` sampled) at every refresh."""

    def __init__(self, label: str, figures: Callable[[], Figures]) -> None:
        self.label = label
        self.figures = figures
        self.rates = Rates()
        self.started = time.monotonic()
        self.last = Figures(done=0)

    def __rich__(self) -> RenderableType:
        self.last = _sample(self.figures) or self.last
        rate = self.rates.rate(self.last.done - self.last.before)
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            ProgressBar(total=self.last.total, completed=self.last.done, width=30),
            Text(progress_line(self.label, self.last, rate), overflow="ellipsis", no_wrap=True),
            Text(_duration(time.monotonic() - self.started), style="dim"),
        )
        return Group(grid)


class _Periodic(threading.Thread):
    """The non-terminal display: one progress log line every ``interval_s``, and at the end."""

    def __init__(self, label: str, figures: Callable[[], Figures], interval_s: float) -> None:
        super().__init__(name=f"progress-{label}", daemon=True)
        self.label = label
        self.figures = figures
        self.interval_s = interval_s
        self.rates = Rates()
        self.stopped = threading.Event()
        self.last = Figures(done=0)
        self.rates.rate(0)  # the rate counts from the start

    def emit(self) -> None:
        self.last = _sample(self.figures) or self.last
        rate = self.rates.rate(self.last.done - self.last.before)
        log.info(
            progress_line(self.label, self.last, rate),
            extra=_fields(self.label, self.last, rate),
        )

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.emit()

    def stop(self, *, last_line: bool = True) -> None:
        self.stopped.set()
        self.join()
        if last_line:
            self.emit()


@contextlib.contextmanager
def show_progress(
    label: str, figures: Callable[[], Figures], *, enabled: bool = True
) -> Iterator[None]:
    """Show ``figures()`` live while the block runs (see the module doc); nothing when not
    ``enabled``. When the block raises (a command failing with its one clear line), the live
    line is erased and no last progress line is logged."""
    if not enabled:
        yield
        return
    settings = display_settings()
    if console.is_terminal and settings.log_format == "text":
        live = Live(_Live(label, figures), console=console, refresh_per_second=4)
        with live:
            try:
                yield
            except BaseException:
                live.transient = True  # a failure's one line is not buried under a bar
                raise
        return
    periodic = _Periodic(label, figures, settings.progress_interval_s)
    periodic.start()
    try:
        yield
    except BaseException:
        periodic.stop(last_line=False)  # a failure says one line, not a progress line too
        raise
    periodic.stop()
