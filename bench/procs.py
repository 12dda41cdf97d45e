"""Run and measure benchmark processes (Linux): CPU seconds and peak RSS, per process.

A ``Child`` is reaped with ``os.wait4``, whose rusage gives the child's whole-life CPU (user +
system, all threads); its peak RSS is ``VmHWM`` from ``/proc/<pid>/status``, read on every poll
while it runs (``ru_maxrss`` would be wrong: Linux keeps the parent's RSS high-water mark in a
forked child across exec, so every child would look at least as big as the bench). Processes the
bench did not start (the Kafka JVM) are read from ``/proc/<pid>/stat`` (CPU) and ``VmHWM``.
``cpu_s(pid)`` of a running child gives in-window deltas.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLI",
    "ROOT",
    "Child",
    "Usage",
    "cpu_s",
    "peak_rss_mib",
    "self_cpu_s",
    "startup_cpu_s",
    "system_busy_s",
]

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "gymstream.cli.main"]
_TICKS = os.sysconf("SC_CLK_TCK")
_POLL_S = 0.005


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def system_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs; /proc/stat, idle and iowait out).

    A run's busy delta minus the CPU of the processes it measured is what other work on the
    machine took meanwhile: the bench reports it, since it skews every figure.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def self_cpu_s() -> float:
    """CPU seconds of this process (the bench itself: its watcher thread included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib(pid: int) -> float:
    """Peak resident set (VmHWM) of a live process since it started, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


@dataclass(frozen=True)
class Usage:
    """What ``os.wait4`` said about a finished child; ``wall_s`` is spawn to exit."""

    returncode: int
    cpu_s: float
    peak_rss_mib: float
    wall_s: float


class Child:
    """A child process (stdout+stderr to ``log``, or stdout piped when ``pipe``)."""

    def __init__(
        self, args: list[str], *, env: dict[str, str], log: Path, pipe: bool = False
    ) -> None:
        self.args = args
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = log.open("ab")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE if pipe else self._log_handle,
            stderr=self._log_handle,
        )
        self.pid = self.proc.pid
        self.usage: Usage | None = None
        self._peak_rss_mib = 0.0

    def cpu_s(self) -> float:
        """CPU seconds so far; after the child ended, its whole-life total."""
        return self.usage.cpu_s if self.usage is not None else cpu_s(self.pid)

    def poll(self) -> Usage | None:
        """Reap the child if it has ended (recording its usage); None while it runs.

        Each call while the child runs also reads its peak RSS (VmHWM, monotonic), so the
        last reading before it ends is its peak: ``ru_maxrss`` from wait4 cannot be used, as
        Linux carries the parent's RSS high-water mark into a forked child across exec.
        """
        if self.usage is not None:
            return self.usage
        with contextlib.suppress(OSError, RuntimeError):  # gone, or a zombie without memory
            self._peak_rss_mib = max(self._peak_rss_mib, peak_rss_mib(self.pid))
        pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        self.usage = Usage(
            returncode=os.waitstatus_to_exitcode(status),
            cpu_s=rusage.ru_utime + rusage.ru_stime,
            peak_rss_mib=self._peak_rss_mib,
            wall_s=time.perf_counter() - self.started,
        )
        self.proc.returncode = self.usage.returncode  # reaped here, not by Popen
        self._log_handle.close()
        return self.usage

    def wait(self, timeout_s: float, what: str = "") -> Usage:
        """Wait for the child to end by itself; kill it and raise after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (usage := self.poll()) is None:
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(
                    f"{what or self.args[3:5]} did not finish within {timeout_s:.0f} s; "
                    f"see {self.log}"
                )
            time.sleep(_POLL_S)
        return usage

    def stop(self, timeout_s: float = 30.0) -> Usage:
        """SIGTERM (a clean stop for gymstream commands), then wait; SIGKILL after timeout."""
        if self.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s, f"{' '.join(self.args[3:5])} after SIGTERM")

    def kill(self) -> None:
        if self.poll() is None:
            self.proc.kill()
            while self.poll() is None:
                time.sleep(_POLL_S)

    def check(self, usage: Usage, what: str) -> None:
        if usage.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited with {usage.returncode}; log {self.log}:\n{tail}")


def startup_cpu_s(env: dict[str, str], log: Path, runs: int = 3) -> float:
    """CPU seconds of starting the gymstream CLI with every import (``produce`` of a missing file).

    The least of ``runs`` starts (the first may also fill the bytecode cache). Subtracted from
    short-lived commands (the producer) to get their per-rollout cost.
    """
    missing = log.parent / "no-such-input.jsonl"
    found = []
    for _ in range(runs):
        child = Child([*CLI, "produce", str(missing)], env=env, log=log)
        usage = child.wait(60, "gymstream produce (start-up only)")
        if usage.returncode != 2:  # the CLI's exit code for a user mistake: the missing file
            child.check(usage, "gymstream produce (start-up only)")
        found.append(usage.cpu_s)
    return min(found)
