"""The Supervisor: runs a pipeline's stages in this process or as child processes, watches them,
and stops them in reverse order of start.

A stage is either a coroutine function run as an asyncio task (``run``), or a command run as a
child process (``spawn``). Stages belong to a group (by default their name); a group is stopped
as one, and groups stop in the reverse order of their first start. So ``collect`` starts the sink
first and the workers as their agents' first tasks are sent; stopping settles the workers first
(each within its own grace), then drains the sink (what the workers published is written),
then ends it.

Stopping a task stage is two signals (``Stopping``): ``drain`` asks it to finish what it holds
and end; ``now`` (set ``grace_s`` later, or at once when not graceful) ends it. A child process
gets SIGTERM (it settles, commits and leaves, as the separate command does) and SIGKILL when it
has not exited ``kill_after_s`` later.

Children die with the parent, however it ends: each has a pipe as standard input that only the
parent holds open (``stdin``: what is written there first, e.g. the worker's serialized plan),
and stops when it closes, which the kernel does when the parent dies, even by kill -9. Their
output goes to an unlinked temporary file (nothing left on disk after a crash); its end is what
a child's death reports.

Watching (``until``): a stage that ends before it was asked to stop fails the run: a task's error
is raised as it is, a child's exit is a ``GymstreamError`` with the end of its log.

Usage::

    async with Supervisor(grace_s=10.0) as supervisor:
        sink = supervisor.run("sink", lambda s: run_sink(..., drain=s.drain, stop=s.now))
        supervisor.spawn("worker process 0 for a", argv, stdin=plan, group="workers")
        if await supervisor.until(sink, stop):  # False: ``stop`` was set first
            report = sink.result()
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Generic, TypeVar

from gymstream.errors import GymstreamError

__all__ = ["ProcessStage", "Stopping", "Supervisor", "TaskStage"]

log = logging.getLogger("gymstream.stage.supervisor")

T = TypeVar("T")

LOG_TAIL_LINES = 5
"""Lines of a dead child's output its error quotes."""


@dataclass(frozen=True)
class Stopping:
    """How a task stage is told to stop: ``drain`` (finish what is in flight, then end) first,
    ``now`` (end at once) after the grace."""

    drain: asyncio.Event = field(default_factory=asyncio.Event)
    now: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class TaskStage(Generic[T]):
    """A stage running as a task of this event loop."""

    name: str
    group: str
    task: asyncio.Task[T]
    stopping: Stopping

    def done(self) -> bool:
        return self.task.done()

    def result(self) -> T:
        """What the stage returned; raises what it raised (it must be done)."""
        return self.task.result()

    def died(self) -> BaseException | None:
        """Why the stage ended although nobody asked it to stop (None: it runs, or was asked)."""
        if not self.task.done() or self.stopping.drain.is_set() or self.task.cancelled():
            return None
        error = self.task.exception()
        return error or GymstreamError(f"{self.name} ended before it was asked to stop")

    async def stop(self, grace_s: float) -> None:
        """Drain, wait up to ``grace_s``, then stop now and wait for the end. An error it ends
        with while stopping is logged; one it had died of before is ``died``'s to report."""
        running = not self.task.done()
        self.stopping.drain.set()
        if grace_s > 0 and running:
            await asyncio.wait({self.task}, timeout=grace_s)
        self.stopping.now.set()
        await asyncio.wait({self.task})
        if running and not self.task.cancelled() and self.task.exception() is not None:
            log.error("%s failed while stopping", self.name, exc_info=self.task.exception())


@dataclass(eq=False)
class ProcessStage:
    """A stage running as a child process; ``log`` holds its standard output and error."""

    name: str
    group: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    stopped: bool = False

    def done(self) -> bool:
        return self.process.poll() is not None

    def died(self) -> BaseException | None:
        """A GymstreamError with the end of the child's output when it exited unasked."""
        code = self.process.poll()
        if code is None or self.stopped:
            return None
        self.log.seek(0)
        tail = self.log.read().decode("utf-8", "replace").strip().splitlines()[-LOG_TAIL_LINES:]
        return GymstreamError(f"{self.name} exited with code {code}: " + " | ".join(tail))

    def terminate(self) -> None:
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, kill_after_s: float) -> None:
        """Wait for the exit (SIGKILL after ``kill_after_s``); then close the pipe and the log."""
        try:
            self.process.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.log.close()


Stage = TaskStage[Any] | ProcessStage


class Supervisor:
    """Starts stages on demand, watches them, and stops them group by group in reverse order."""

    def __init__(self, *, grace_s: float, kill_after_s: float = 30.0, poll_s: float = 0.5) -> None:
        self.grace_s = grace_s
        self.kill_after_s = kill_after_s
        self.poll_s = poll_s  # how often children are looked at while waiting
        self.stages: list[Stage] = []
        self._stopped = False

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop(graceful=exc_type is None)

    def names(self) -> set[str]:
        return {stage.name for stage in self.stages}

    def run(
        self, name: str, stage: Callable[[Stopping], Awaitable[T]], *, group: str | None = None
    ) -> TaskStage[T]:
        """Start ``stage(stopping)`` as a task of this loop."""
        stopping = Stopping()

        async def body() -> T:
            return await stage(stopping)

        task = asyncio.create_task(body(), name=name)
        started = TaskStage(name, group or name, task, stopping)
        self.stages.append(started)
        return started

    def spawn(
        self, name: str, argv: Sequence[str], *, stdin: bytes = b"", group: str | None = None
    ) -> ProcessStage:
        """Start ``argv`` as a child process; ``stdin`` (small: it must fit the pipe's buffer,
        64 KiB on Linux) is written to its standard input pipe, which stays open until the
        child is stopped (its end is the parent's death)."""
        output = tempfile.TemporaryFile()  # noqa: SIM115  # closed by ProcessStage.wait
        process = subprocess.Popen(  # our own command, arguments from our settings
            list(argv), stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.PIPE
        )
        if stdin and process.stdin is not None:
            process.stdin.write(stdin)
            process.stdin.flush()
        started = ProcessStage(name, group or name, process, output)
        self.stages.append(started)
        return started

    def check(self) -> None:
        """Raise why a stage ended unasked (its own error, or a child's exit with its log)."""
        for stage in self.stages:
            error = stage.died()
            if error is not None:
                raise error

    async def until(self, awaited: TaskStage[Any], stop: asyncio.Event) -> bool:
        """Wait until ``awaited`` is done (True) or ``stop`` is set (False); raise when another
        stage dies first (``check``)."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not awaited.done() and not stop.is_set():
                self.check()
                others = {s.task for s in self.stages if isinstance(s, TaskStage) and not s.done()}
                await asyncio.wait(
                    {stopping, *others}, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            stopping.cancel()
        return awaited.done()

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop every stage, group by group in reverse order of start; each group's stages
        at once. Graceful: task stages drain for up to ``grace_s`` first. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        groups: dict[str, list[Stage]] = {}
        for stage in self.stages:
            groups.setdefault(stage.group, []).append(stage)
        for members in reversed(groups.values()):
            await self._stop_group(members, self.grace_s if graceful else 0.0)

    async def _stop_group(self, members: list[Stage], grace_s: float) -> None:
        children = [s for s in members if isinstance(s, ProcessStage)]
        for child in children:
            child.terminate()
        tasks = [s.stop(grace_s) for s in members if isinstance(s, TaskStage)]
        waits = [asyncio.to_thread(c.wait, self.kill_after_s) for c in children]
        await asyncio.gather(*tasks, *waits)
