"""The Supervisor: a stage that dies fails the run; stages stop group by group in reverse order
of start (drain first, now after the grace); children get their stdin and die with a reason."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest

from gymstream.errors import GymstreamError
from gymstream.stage.supervisor import Stopping, Supervisor


async def until_drained(stopping: Stopping) -> str:
    await stopping.drain.wait()
    return "drained"


async def test_until_is_true_when_the_awaited_stage_completes() -> None:
    async with Supervisor(grace_s=1.0) as supervisor:

        async def quick(stopping: Stopping) -> int:
            return 7

        sink = supervisor.run("sink", quick)
        supervisor.run("worker", until_drained, group="workers")
        assert await asyncio.wait_for(supervisor.until(sink, asyncio.Event()), 5)
        assert sink.result() == 7


async def test_until_is_false_when_stop_is_set_first() -> None:
    stop = asyncio.Event()
    async with Supervisor(grace_s=1.0) as supervisor:
        sink = supervisor.run("sink", until_drained)
        stop.set()
        assert not await asyncio.wait_for(supervisor.until(sink, stop), 5)
    assert sink.result() == "drained"


async def test_a_stage_that_raises_fails_the_run_with_its_error() -> None:
    async def broken(stopping: Stopping) -> None:
        raise ValueError("the worker broke")

    supervisor = Supervisor(grace_s=1.0)
    sink = supervisor.run("sink", until_drained)
    supervisor.run("worker for a", broken, group="workers")
    with pytest.raises(ValueError, match="the worker broke"):
        await asyncio.wait_for(supervisor.until(sink, asyncio.Event()), 5)
    await supervisor.stop(graceful=False)
    assert sink.result() == "drained"


async def test_a_stage_that_ends_unasked_fails_the_run() -> None:
    async def quits(stopping: Stopping) -> None:
        return None

    async with Supervisor(grace_s=1.0) as supervisor:
        sink = supervisor.run("sink", until_drained)
        supervisor.run("worker for a", quits, group="workers")
        with pytest.raises(GymstreamError, match="worker for a ended before it was asked"):
            await asyncio.wait_for(supervisor.until(sink, asyncio.Event()), 5)


async def test_groups_stop_in_reverse_order_of_start_each_group_at_once() -> None:
    events: list[str] = []

    def stage(name: str) -> Callable[[Stopping], Awaitable[None]]:
        async def run(stopping: Stopping) -> None:
            await stopping.drain.wait()
            events.append(f"{name} drained")
            await asyncio.sleep(0.01)
            events.append(f"{name} ended")

        return run

    supervisor = Supervisor(grace_s=5.0)
    supervisor.run("sink", stage("sink"))
    supervisor.run("worker a", stage("a"), group="workers")
    supervisor.run("worker b", stage("b"), group="workers")
    await asyncio.wait_for(supervisor.stop(), 5)
    # both workers drain together, and end before the sink is asked to drain
    assert set(events[:2]) == {"a drained", "b drained"}
    assert set(events[2:4]) == {"a ended", "b ended"}
    assert events[4:] == ["sink drained", "sink ended"]


async def test_a_stage_that_ignores_drain_is_stopped_now_after_the_grace() -> None:
    seen: list[str] = []

    async def stubborn(stopping: Stopping) -> None:
        await stopping.now.wait()
        seen.append("drain" if stopping.drain.is_set() else "no drain")

    supervisor = Supervisor(grace_s=0.05)
    stage = supervisor.run("sink", stubborn)
    await asyncio.wait_for(supervisor.stop(), 5)
    assert seen == ["drain"]
    assert stage.done()


async def test_a_child_gets_its_stdin_and_its_death_quotes_its_output() -> None:
    code = "import sys; print('plan:', sys.stdin.readline().strip(), flush=True); sys.exit(3)"
    supervisor = Supervisor(grace_s=1.0, poll_s=0.05)
    sink = supervisor.run("sink", until_drained)
    child = supervisor.spawn("worker process 0 for a", [sys.executable, "-c", code], stdin=b"P\n")
    try:
        with pytest.raises(GymstreamError) as caught:
            await asyncio.wait_for(supervisor.until(sink, asyncio.Event()), 30)
        assert str(caught.value) == "worker process 0 for a exited with code 3: plan: P"
    finally:
        await supervisor.stop(graceful=False)
    assert child.done()


async def test_stopping_sends_a_child_sigterm_and_it_is_not_a_death() -> None:
    code = "import sys; print('up', flush=True); sys.stdin.read()"  # waits on its pipe
    async with Supervisor(grace_s=1.0, kill_after_s=30.0) as supervisor:
        child = supervisor.spawn("worker", [sys.executable, "-c", code], group="workers")
    assert child.process.returncode is not None  # SIGTERM ended it
    assert child.died() is None  # asked to stop: not a failure
