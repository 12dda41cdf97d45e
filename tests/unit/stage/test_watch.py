"""StageWatch: a stage is ready once it holds a partition and its own check passes."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from gymstream.observe.metrics import Metrics
from gymstream.stage.watch import StageWatch

TP = TopicPartition("t.results", 0)


class Consumer:
    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int:
        return 10

    async def position(self, tp: TopicPartition) -> int:
        return 4


def test_readiness_waits_for_a_consumer_then_a_partition_then_the_stage_check() -> None:
    metrics = Metrics()
    consumer: list[Any] = [None]
    outage: list[str | None] = ["model endpoint down for 3 s"]
    StageWatch(
        metrics,
        "sink",
        lambda: consumer[0],
        unassigned="no partition",
        also_ready=lambda: outage[0],
    )
    assert metrics.readiness.report() == (False, {"sink": "no partition"})
    consumer[0] = Consumer()
    assert metrics.readiness.report() == (False, {"sink": "no partition"})
    consumer[0].assigned.add(TP)
    assert metrics.readiness.report() == (False, {"sink": "model endpoint down for 3 s"})
    outage[0] = None
    assert metrics.readiness.report() == (True, {"sink": "ok"})


async def test_lag_is_the_end_minus_the_stage_own_committed_position() -> None:
    consumer = Consumer()
    consumer.assigned.add(TP)
    own = StageWatch(Metrics(), "w", lambda: consumer, unassigned="-", committed=lambda tp: 7)
    await own.measure_lag(force=True)
    assert own.lag() == {("t.results", 0): 3}
    by_position = StageWatch(Metrics(), "s", lambda: consumer, unassigned="-")
    await by_position.measure_lag(force=True)
    assert by_position.lag() == {("t.results", 0): 6}
    nothing = StageWatch(Metrics(), "n", lambda: None, unassigned="-")
    await nothing.measure_lag(force=True)  # no consumer yet: nothing measured, no error
    assert nothing.lag() == {}
