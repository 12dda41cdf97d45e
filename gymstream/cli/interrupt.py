"""A graceful stop on SIGTERM/SIGINT for `collect`: the first signal winds down, a second exits.

The first signal sets ``stop`` (``gymstream.collect.collect`` then stops producing, settles what
is in flight, writes and commits what arrived) and says so on stderr; a second one exits at
once, without settling: nothing is lost even then (only what is on disk is committed; the same
``--run-id`` redoes the rest). The exit code is 128 + the signal (130 for SIGINT, 143 for
SIGTERM), as a shell reports a process the signal ended; ``resume_command`` is the line to run.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
from collections.abc import Sequence

from rich.text import Text

from gymstream.cli.console import console

__all__ = ["Interrupt", "resume_command"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupt:
    """``stop`` is set by the first SIGTERM/SIGINT; ``signal`` is which one (None: none)."""

    def __init__(self, grace_s: float) -> None:
        self.stop = asyncio.Event()
        self.signal: signal.Signals | None = None
        self.grace_s = grace_s

    def install(self) -> None:
        """Take SIGTERM and SIGINT on the running loop (call it from inside the loop)."""
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.signal is None:
            self.signal = sig
            console.print(
                Text(
                    f"{sig.name}: stopping: no new rollouts; those in flight settle (up to "
                    f"{self.grace_s:g} s), the output gets what arrived; a second signal stops "
                    "at once"
                ),
                highlight=False,
            )
            self.stop.set()
            return
        console.print(
            Text(f"{sig.name} again: stopping at once; the same --run-id resumes"),
            highlight=False,
        )
        console.show_cursor(True)
        os._exit(128 + sig)  # at once: no settling (nothing is committed that is not on disk)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)


def resume_command(argv: Sequence[str], run_id: str) -> str:
    """The command line that resumes this run: ``argv`` (without the program), with
    ``--run-id`` added when it was not given (the run id was made up)."""
    args = list(argv)
    if not any(a == "--run-id" or a.startswith("--run-id=") for a in args):
        args += ["--run-id", run_id]
    return shlex.join(["gymstream", *args])
