"""`gymstream status --json` against a live run on the real broker: counts while it runs, the
output file's counts at the end, the worker in the group's members, an unknown run id."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import (
    AGENT_ONE,
    cli_env,
    count_lines,
    gymstream,
    in_process_worker,
    single_tool_input,
    spawn,
)
from fixtures.topics import end_offsets, make_producer, wait_until

from gymstream.kafka.topics import apply_topics, load_layout
from gymstream.nemo_gym.outputs.files import OutputPaths
from gymstream.produce.plan import ProduceOptions
from gymstream.produce.producer import produce, publish_manifest
from gymstream.settings import KafkaSettings, WorkerSettings
from gymstream.sink.loop import run_sink
from gymstream.status.facts import StatusProbe
from gymstream.status.report import build_document
from gymstream.wire.codec import ENCODER
from gymstream.wire.keys import progress_key
from gymstream.wire.records import RunManifest, StreamProgress

pytestmark = pytest.mark.kafka

RUN = "status-run"
ROWS, REPEATS = 6, 2
EXPECTED = ROWS * REPEATS
WORKER_CLIENT = "status-test-worker"


async def status(env: dict[str, str], *args: str) -> dict[str, Any]:
    """The run's entry of `gymstream status --json --run-id RUN` (in a thread: the worker and
    the sink of this test run on this event loop meanwhile)."""
    done = await asyncio.to_thread(gymstream, "status", "--json", "--run-id", RUN, *args, env=env)
    assert done.returncode == 0, done.stderr
    return only_run(json.loads(done.stdout))


def only_run(document: dict[str, Any]) -> dict[str, Any]:
    assert document["schema_version"] == 1
    [run] = document["runs"]
    assert run["run_id"] == RUN
    return dict(run)


async def refreshed(probe: StatusProbe) -> dict[str, Any]:
    """What the command prints at a --watch refresh, made in this process (the command's
    start-up costs seconds on a loaded machine; the CLI itself is run before and after)."""
    document = build_document(await probe.gather(RUN), generated_ms=0, topic_prefix="")
    return only_run(json.loads(ENCODER.encode(document)))


async def test_status_follows_a_live_run_to_its_end(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = cli_env(kafka_bootstrap)
    prefix = env["GYMSTREAM_TOPIC_PREFIX"]
    layout = load_layout(prefix=prefix)
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, client_id=WORKER_CLIENT)
    await apply_topics(kafka.client_options(), layout, [AGENT_ONE])
    data = single_tool_input(tmp_path / "in.jsonl", ROWS)
    options = ProduceOptions(
        input_path=data, run_id=RUN, known_agents=[AGENT_ONE], num_repeats=REPEATS
    )
    assert sum((await produce(kafka, layout, options)).expected.values()) == EXPECTED

    # produced, nothing consumed yet: every task waits; no sink has counted anything
    before = await status(env)
    assert (before["state"], before["expected"], before["published"]) == ("produced", 12, 12)
    assert (before["written"], before["failed"], before["in_flight"]) == (None, None, None)
    assert before["complete"] is False
    [agent] = before["agents"]
    assert (agent["agent"], agent["expected"], agent["published"]) == (AGENT_ONE, 12, 12)
    assert agent["lag"] == EXPECTED
    assert agent["workers"]["members"] == []
    assert before["sink"]["reported"] is False

    paths = OutputPaths(tmp_path / "out.jsonl")
    sink = asyncio.create_task(run_sink(kafka, layout, paths, RUN, progress_interval_s=0.1))
    try:
        async with StatusProbe(kafka, layout) as probe:

            async def sink_reported() -> bool:
                return bool((await refreshed(probe))["sink"]["reported"])

            await wait_until(sink_reported, 60, "the sink's first counts")
            started = await refreshed(probe)
            assert (started["written"], started["failed"], started["in_flight"]) == (0, 0, 12)

            settings = WorkerSettings(concurrency=2, commit_interval_s=0.05)
            async with in_process_worker(kafka, layout, settings, model_latency_ms=150):
                seen: list[dict[str, Any]] = []

                async def some_written_with_the_worker_in_its_group() -> bool:
                    run = await refreshed(probe)
                    seen.append(run)
                    return bool(run["written"]) and bool(run["agents"][0]["workers"]["members"])

                await wait_until(some_written_with_the_worker_in_its_group, 60, "a rollout")
                for run in seen:  # every snapshot while it ran is plausible
                    assert run["published"] == run["expected"] == EXPECTED
                    assert 0 <= run["written"] <= EXPECTED
                    assert run["written"] + run["failed"] + run["in_flight"] == EXPECTED
                workers = seen[-1]["agents"][0]["workers"]
                assert [m["client_id"] for m in workers["members"]] == [WORKER_CLIENT]
                assert workers["hosts"]
                assert workers["state"] == "Stable"
                report = await asyncio.wait_for(sink, 120)
    finally:
        sink.cancel()
    assert report.complete

    # a trainer stream's position: nothing read yet, so its lag is every result and failure
    position = StreamProgress(run_id=RUN, consumer="trainer-1", unit="group", group_size=0)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            layout.runs, ENCODER.encode(position), key=progress_key(RUN, "trainer-1")
        )
    finally:
        await producer.stop()

    # the JSON and the human table, both through the CLI (at once: each start-up takes seconds)
    after, table = await asyncio.gather(
        status(env), asyncio.to_thread(gymstream, "status", "--run-id", RUN, env=env)
    )
    written, failed = count_lines(paths.output), count_lines(paths.failures)
    assert written + failed == EXPECTED
    assert (after["written"], after["failed"], after["in_flight"]) == (written, failed, 0)
    assert after["complete"] is True
    [agent] = after["agents"]
    assert (agent["written"], agent["failed"], agent["lag"]) == (written, failed, 0)
    assert agent["workers"]["members"] == []  # the worker left its group when it stopped
    assert after["sink"]["complete"] is True
    assert after["sink"]["lag"] == 0
    [trainer] = after["trainers"]
    on_topics = sum((await end_offsets(kafka_bootstrap, layout.results)).values()) + sum(
        (await end_offsets(kafka_bootstrap, layout.failures)).values()
    )
    assert (trainer["consumer"], trainer["closed_units"], trainer["lag"]) == (
        "trainer-1",
        0,
        on_topics,
    )
    assert trainer["expected_units"] == ROWS  # groups of REPEATS, from the manifest
    assert on_topics >= EXPECTED

    # the human table says the same
    assert table.returncode == 0, table.stderr
    assert f"run {RUN}: complete, {written} written, {failed} failed of {EXPECTED}" in table.stdout


async def test_an_unknown_run_id_is_one_line_and_exit_2(kafka_bootstrap: str) -> None:
    env = cli_env(kafka_bootstrap)
    layout = load_layout(prefix=env["GYMSTREAM_TOPIC_PREFIX"])
    await apply_topics(KafkaSettings(bootstrap=kafka_bootstrap).client_options(), layout, [])
    done = await asyncio.to_thread(gymstream, "status", "--run-id", "no-such-run", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: no run 'no-such-run' on {layout.runs} (0 runs there; `gymstream status` "
        "lists them, check --topic-prefix)"
    ]
    listing = await asyncio.to_thread(gymstream, "status", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)["runs"] == []


@pytest.mark.parametrize("as_json", [False, True])
async def test_watch_refreshes_a_line_per_run_until_interrupted(
    kafka_bootstrap: str, tmp_path: Path, as_json: bool
) -> None:
    """Not a terminal: a line per refresh (a document per line with --json); SIGINT ends it
    cleanly (exit 0)."""
    env = cli_env(kafka_bootstrap)
    layout = load_layout(prefix=env["GYMSTREAM_TOPIC_PREFIX"])
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    await apply_topics(kafka.client_options(), layout, [AGENT_ONE])
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        manifest = RunManifest(run_id=RUN, state="produced", expected={AGENT_ONE: 3})
        await publish_manifest(producer, layout, manifest)
    finally:
        await producer.stop()
    log = tmp_path / "watch.log"
    args = ["status", "--run-id", RUN, "--watch", "0.2", *(["--json"] if as_json else [])]
    proc = spawn(args, env, log)
    try:
        await wait_until(lambda: count_lines(log) >= 3, 60, "three refreshes")
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert len(lines) >= 3
    for line in lines:
        if as_json:
            [run] = json.loads(line)["runs"]
            assert (run["run_id"], run["expected"], run["written"]) == (RUN, 3, None)
        else:
            assert f"run {RUN} produced: written ?, failed ? of 3, in flight ?" in line
            assert line.endswith("task lag 0, 0 worker(s), complete no")
