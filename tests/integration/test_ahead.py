"""Ahead mode against the real broker: batches come back in submission order, each whole and
once, at most K+1 in flight, never more than K policy versions stale, nothing left behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fixtures.client import client_kafka, client_rows, client_settings, drained
from fixtures.model import ModelFactory
from fixtures.pipeline import AGENT_ONE
from fixtures.waits import run_to_end

from gymstream.client import (
    AheadFullError,
    AheadRuns,
    RolloutClient,
    StaleBatchError,
    SyncAheadRuns,
    SyncRolloutClient,
)
from gymstream.nemo_gym.config.agents import load_config
from gymstream.testing.thread import ScriptedThread

pytestmark = pytest.mark.kafka


@pytest.fixture
def model(make_scripted_model: ModelFactory) -> ScriptedThread:
    return make_scripted_model()


async def test_k_batches_ahead_in_order_whole_and_once(
    kafka_bootstrap: str, model: ScriptedThread
) -> None:
    kafka, layout = client_kafka(kafka_bootstrap)
    batches = [client_rows("example_single_tool_call", AGENT_ONE, 4) for _ in range(5)]
    async with RolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=client_settings(model.url)
    ) as client:
        runs = AheadRuns(client, ahead=2)
        submitted = [runs.submit(batches[i], policy_version=0) for i in range(3)]
        with pytest.raises(AheadFullError):  # K+1 in flight already
            runs.submit(batches[3], policy_version=0)
        taken = []
        for step in range(5):
            done = await runs.take(current_version=step)
            taken.append(done)
            if step + 3 < len(batches):
                submitted.append(runs.submit(batches[step + 3], policy_version=step + 1))
            assert runs.in_flight <= 3  # K+1 at most, K while the trainer trains
        assert await runs.close() == 0
    assert [b.run_id for b in taken] == [b.run_id for b in submitted]  # submission order
    assert [b.policy_version for b in taken] == [0, 0, 0, 1, 2]
    for rows, batch in zip(batches, taken, strict=True):
        assert sorted(id(row) for row, _ in batch.pairs) == sorted(map(id, rows))  # whole, once
        assert all(result["reward"] == 1.0 for _, result in batch.pairs)


async def test_staleness_bound_refuses_and_close_leaves_nothing(
    kafka_bootstrap: str, model: ScriptedThread
) -> None:
    kafka, layout = client_kafka(kafka_bootstrap)
    rows = client_rows("example_single_tool_call", AGENT_ONE, 3)
    async with RolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=client_settings(model.url)
    ) as client:
        strict = AheadRuns(client, ahead=0)
        strict.submit(rows, policy_version=4)
        with pytest.raises(StaleBatchError) as stale:  # K=0: only its own version
            await strict.take(current_version=5)
        assert stale.value.batch.policy_version == 4
        assert sorted(id(r) for r, _ in stale.value.batch.pairs) == sorted(map(id, rows))
        assert strict.in_flight == 0  # refused, not kept

        loose = AheadRuns(client, ahead=1)
        loose.submit(rows, policy_version=4)
        assert (await loose.take(current_version=5)).policy_version == 4  # 1 behind: fine
        with pytest.raises(ValueError, match="submitted after"):
            loose.submit(rows, policy_version=3)
        loose.submit(rows, policy_version=6)
        loose.submit(rows, policy_version=6)
        assert await loose.close() == 2  # both waited for and dropped
        assert await drained(kafka, client.layout, AGENT_ONE)  # no task waits for a later run


def test_sync_trainer_loop_one_ahead(kafka_bootstrap: str, model: ScriptedThread) -> None:
    """A synchronous trainer: batch n+1 is collected on the client's loop while it trains on n."""
    kafka, layout = client_kafka(kafka_bootstrap)
    batches = [client_rows("example_single_tool_call", AGENT_ONE, 3) for _ in range(4)]
    with SyncRolloutClient(
        load_config(), kafka=kafka, layout=layout, settings=client_settings(model.url)
    ) as client:
        runs = SyncAheadRuns(client, ahead=1)
        runs.submit(batches[0], policy_version=0)
        taken = []
        for step in range(4):
            if step + 1 < len(batches):
                runs.submit(batches[step + 1], policy_version=step)
            taken.append(runs.take(current_version=step))
        assert runs.close() == 0
    assert [b.policy_version for b in taken] == [0, 0, 1, 2]
    for rows, batch in zip(batches, taken, strict=True):
        assert sorted(id(row) for row, _ in batch.pairs) == sorted(map(id, rows))


@pytest.mark.slow
def test_bench_ahead_reports_each_k(kafka_bootstrap: str) -> None:
    """``python -m bench.ahead`` (docs/performance.md) runs and reports every K: structure and
    the staleness bound only, never speed."""
    done = run_to_end(
        [
            *[sys.executable, "-m", "bench.ahead", "--bootstrap", kafka_bootstrap],
            *["--steps", "3", "--batch-size", "2", "--step-s", "0.01", "--latency-ms", "0"],
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-4000:]
    table = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    rows = {
        int(cells[0]): [float(c) for c in cells[1:]]
        for cells in table
        if cells[0].strip()[0].isdigit()
    }
    assert sorted(rows) == [0, 1, 2]
    for k, (idle, first, rate, staleness) in rows.items():
        assert min(idle, first) >= 0
        assert rate > 0
        assert staleness <= k
