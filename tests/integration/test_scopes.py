"""Runs never mix (issue 19, items 2-3): a collect's tasks are taken only by its own workers,
an interrupted run's leftovers wait for its resume or a cancel, `gymstream runs` lists, cancels
and deletes. Real broker, separate processes, two scripted models told apart by their URL."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from kafka_helpers import list_topics, read_all
from pipeline_helpers import (
    AGENT_ONE,
    QUICK_MODEL_ENV,
    assert_exactly_once,
    cli_env,
    count_lines,
    last_assignment,
    read_jsonl,
    single_tool_input,
    spawn,
    start_worker,
    stop_gracefully,
    wait_until,
)
from typer.testing import CliRunner, Result

from gymstream.cli.main import app
from gymstream.kafka.topics import private_namespace
from gymstream.testing.thread import ScriptedThread, start_scripted_in_thread
from gymstream.wire.messages import ResultMessage

pytestmark = pytest.mark.kafka


@pytest.fixture
def model_a() -> Iterator[ScriptedThread]:
    with start_scripted_in_thread() as server:
        yield server


@pytest.fixture
def model_b() -> Iterator[ScriptedThread]:
    with start_scripted_in_thread() as server:
        yield server


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    """A fresh deployment (its own topic prefix) whose default model is none: each command says."""
    values = cli_env(kafka_bootstrap, **QUICK_MODEL_ENV)
    for name in ("GYMSTREAM_MODEL_BASE_URL", "GYMSTREAM_MODEL_NAME", "GYMSTREAM_NAMESPACE"):
        values.pop(name, None)
    return values


def model_opts(server: ScriptedThread, name: str) -> list[str]:
    return ["--model-base-url", server.url, "--model-name", name]


def results_of(env: dict[str, str], run_id: str) -> list[ResultMessage]:
    """Every result envelope of ``run_id`` on the deployment's results topic."""
    topic = f"{env['GYMSTREAM_TOPIC_PREFIX']}.results"
    values = asyncio.run(read_all(env["GYMSTREAM_KAFKA_BOOTSTRAP"], topic))
    found = [msgspec.json.decode(v, type=ResultMessage) for v in values]
    return [r for r in found if r.run_id == run_id]


def cli(env: dict[str, str], *args: str, answer: str | None = None) -> Result:
    """A gymstream command in this process (no interpreter start: seconds less per command)."""
    return CliRunner().invoke(app, list(args), env=env, input=answer)


def collect(env: dict[str, str], data: Path, out: Path, run_id: str, *extra: str) -> Result:
    """A collect in this process (a subprocess would add an interpreter start)."""
    args = ["collect", "-i", str(data), "-o", str(out), "--run-id", run_id, "--no-progress"]
    return cli(env, *args, *extra)


def interrupted_collect(
    env: dict[str, str], tmp_path: Path, run_id: str, slow: ScriptedThread
) -> tuple[Path, Path]:
    """A collect of 20 rows stopped (SIGTERM) once every task is published and before its one
    slow rollout at a time could finish them: most of its tasks are left waiting."""
    data = single_tool_input(tmp_path / f"{run_id}.jsonl", rows=20)
    out = tmp_path / f"{run_id}_out.jsonl"
    args = ["collect", "-i", str(data), "-o", str(out), "--run-id", run_id, "--no-progress"]
    args += ["--concurrency", "1", *model_opts(slow, "model-a")]
    log = tmp_path / f"{run_id}.log"
    proc = spawn(args, env, log)
    materialized = tmp_path / f"{run_id}_out_materialized_inputs.jsonl"
    wait_until(lambda: count_lines(materialized) == 20, 60, "every task published")
    assert stop_gracefully(proc) == 143, log.read_text()
    assert count_lines(out) < 20, "the collect finished before it was interrupted"
    return data, out


def test_a_foreign_worker_never_takes_a_collect_s_tasks(
    env: dict[str, str], model_a: ScriptedThread, model_b: ScriptedThread, tmp_path: Path
) -> None:
    assert cli(env, "topics", "apply", "--agent", AGENT_ONE).exit_code == 0
    log = tmp_path / "foreign.log"
    foreign = start_worker(AGENT_ONE, env, log, *model_opts(model_a, "model-a"))
    try:
        wait_until(lambda: last_assignment(log) > 0, 60, "the foreign worker to hold partitions")
        data = single_tool_input(tmp_path / "in.jsonl", rows=24)
        out = tmp_path / "out.jsonl"
        result = collect(env, data, out, "mine", *model_opts(model_b, "model-b"))
        assert result.exit_code == 0, result.output
    finally:
        assert stop_gracefully(foreign) == 0, log.read_text()
    assert_exactly_once(read_jsonl(out), {(AGENT_ONE, t, 0) for t in range(24)})
    models = Counter((r.model_base_url, r.model_name) for r in results_of(env, "mine"))
    assert models == {(model_b.url, "model-b"): 24}  # not one from the foreign worker's model A
    assert "worker for example_single_tool_call_simple_agent: 0 taken" in log.read_text()
    # complete: the private namespace's task topics are gone; the shared one is untouched
    prefix = env["GYMSTREAM_TOPIC_PREFIX"]
    topics = asyncio.run(list_topics(env["GYMSTREAM_KAFKA_BOOTSTRAP"]))
    assert [t for t in topics if t.startswith(f"{prefix}.scope.")] == []
    assert f"{prefix}.tasks.{AGENT_ONE}" in topics


def test_an_interrupted_run_s_tasks_never_run_in_another_run(
    kafka_bootstrap: str, model_b: ScriptedThread, tmp_path: Path
) -> None:
    env = cli_env(kafka_bootstrap, **QUICK_MODEL_ENV)
    with start_scripted_in_thread(latency_ms=300) as slow_a:
        data1, out1 = interrupted_collect(env, tmp_path, "first", slow_a)
        before = len(results_of(env, "first"))
        listed = cli(env, "runs", "list")
        assert listed.exit_code == 0, listed.output
        assert f"namespace {private_namespace('first')}" in listed.stdout
        assert "first  produced" in listed.stdout  # not complete: its tasks wait
        status = cli(env, "status", "--run-id", "first", "--json")
        assert status.exit_code == 0, status.output
        run = msgspec.json.decode(status.stdout)["runs"][0]
        assert (run["namespace"], run["complete"]) == (private_namespace("first"), False)
        assert run["agents"][0]["lag"] > 0  # its tasks wait in its own topic, seen there

        data2 = single_tool_input(tmp_path / "second.jsonl", rows=10)
        out2 = tmp_path / "second_out.jsonl"
        result = collect(env, data2, out2, "second", *model_opts(model_b, "model-b"))
        assert result.exit_code == 0, result.output
        assert_exactly_once(read_jsonl(out2), {(AGENT_ONE, t, 0) for t in range(10)})
        # none of the first run's tasks ran while the second ran (they would carry model B)
        assert {r.model_name for r in results_of(env, "first")} <= {"model-a"}
        assert len(results_of(env, "first")) == before

        # they waited for the first run's resume, which runs them with its own model
        again = ["--concurrency", "4", *model_opts(slow_a, "model-a")]
        resumed = collect(env, data1, out1, "first", *again)
        assert resumed.exit_code == 0, resumed.output
    assert_exactly_once(read_jsonl(out1), {(AGENT_ONE, t, 0) for t in range(20)})
    assert {r.model_name for r in results_of(env, "first")} == {"model-a"}
    assert {r.model_name for r in results_of(env, "second")} == {"model-b"}


async def _refused_while_a_worker_is_live(
    env: dict[str, str], namespace: str, topic: str
) -> Result:
    """`runs cancel` while a consumer holds the namespace's worker group (as a collect's worker
    does)."""
    from aiokafka import AIOKafkaConsumer

    group = f"{env['GYMSTREAM_TOPIC_PREFIX']}.scope.{namespace}.worker.{AGENT_ONE}"
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=env["GYMSTREAM_KAFKA_BOOTSTRAP"], group_id=group
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
        return await asyncio.to_thread(cli, env, "runs", "cancel", "left")
    finally:
        await consumer.stop()


def test_runs_list_cancel_and_delete(env: dict[str, str], tmp_path: Path) -> None:
    # a run whose tasks wait in its private namespace, no worker there: produced, not complete
    namespace = private_namespace("left")
    data = single_tool_input(tmp_path / "in.jsonl", rows=5)
    common = ["--namespace", namespace]
    assert cli(env, "topics", "apply", "--agent", AGENT_ONE, *common).exit_code == 0
    produced = cli(env, "produce", str(data), "--run-id", "left", "--no-progress", *common)
    assert produced.exit_code == 0, produced.output
    prefix, bootstrap = env["GYMSTREAM_TOPIC_PREFIX"], env["GYMSTREAM_KAFKA_BOOTSTRAP"]
    task_topic = f"{prefix}.scope.{namespace}.tasks.{AGENT_ONE}"
    assert task_topic in asyncio.run(list_topics(bootstrap))

    listed = cli(env, "runs", "list")
    line = r"left  produced  0 written, 0 failed of 5  age \d+[smhd]  namespace "
    assert re.search(line + re.escape(namespace), listed.stdout), listed.output
    refused = cli(env, "runs", "delete", "left", "--yes")
    assert refused.exit_code == 2
    assert "error: run left is not finished (produced)" in refused.stderr

    # while a worker of its namespace is live (its collect runs), nothing is dropped
    live = asyncio.run(_refused_while_a_worker_is_live(env, namespace, task_topic))
    assert live.exit_code == 2, live.output
    assert f"error: run left is running: 1 worker(s) in {prefix}.scope.{namespace}.worker." in (
        " ".join(live.stderr.split())
    )
    assert task_topic in asyncio.run(list_topics(bootstrap))
    assert "left  produced" in cli(env, "runs", "list").stdout  # not marked cancelled either

    cancelled = cli(env, "runs", "cancel", "left")
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancelled left: dropped its 1 task topics" in cancelled.stdout
    assert task_topic not in asyncio.run(list_topics(bootstrap))
    assert "left  cancelled" in cli(env, "runs", "list").stdout

    kept = cli(env, "runs", "delete", "left", answer="n\n")
    assert kept.exit_code == 1, kept.output
    assert "left  cancelled" in cli(env, "runs", "list").stdout
    deleted = cli(env, "runs", "delete", "left", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert "deleted run left: 1 records" in deleted.stdout
    assert "left " not in cli(env, "runs", "list").stdout
    missing = cli(env, "runs", "cancel", "left")
    assert missing.exit_code == 2
    assert "error: no run 'left'" in missing.stderr


def test_rows_of_two_models_are_said_in_one_line(
    env: dict[str, str], model_b: ScriptedThread, tmp_path: Path
) -> None:
    """Two workers of the shared namespace, each with its own model, serve one run in turn (a
    slow one stopped after its first result, then another): the sink's summary and
    `gymstream status` say that the rows come from two models."""
    assert cli(env, "topics", "apply", "--agent", AGENT_ONE).exit_code == 0
    data = single_tool_input(tmp_path / "in.jsonl", rows=24)
    produced = cli(env, "produce", str(data), "--run-id", "mixed", "--no-progress")
    assert produced.exit_code == 0, produced.output
    with start_scripted_in_thread(latency_ms=500) as model_a:  # 24 rows: over 20 s
        log_a = tmp_path / "a.log"
        first = start_worker(
            AGENT_ONE, env, log_a, "--concurrency", "1", *model_opts(model_a, "model-a")
        )
        try:
            wait_until(lambda: bool(results_of(env, "mixed")), 120, "model A's first result")
        finally:
            assert stop_gracefully(first) == 0, log_a.read_text()
    second = start_worker(AGENT_ONE, env, tmp_path / "b.log", *model_opts(model_b, "model-b"))
    try:
        out = tmp_path / "out.jsonl"
        sink = cli(env, "sink", "-o", str(out), "--run-id", "mixed", "--no-progress")
        assert sink.exit_code == 0, sink.output
    finally:
        assert stop_gracefully(second) == 0
    model_a_url = model_a.url
    counts = Counter(r.model_name for r in results_of(env, "mixed"))
    assert set(counts) == {"model-a", "model-b"}, counts
    text = " ".join(sink.stdout.split())
    assert "warning: rows of run mixed come from 2 models" in text, sink.stdout
    assert f"model-b at {model_b.url}" in text, sink.stdout
    status = cli(env, "status", "--run-id", "mixed", "--json")
    assert status.exit_code == 0, status.output
    document = msgspec.json.decode(status.stdout)
    models = document["runs"][0]["models"]
    assert set(models) == {f"model-a at {model_a_url}", f"model-b at {model_b.url}"}
    assert sum(models.values()) == 24  # every row, each counted once
    assert document["runs"][0]["mixed_models"].startswith("rows of run mixed come from 2 models")
    human = cli(env, "status", "--run-id", "mixed")
    assert "warning: rows of run mixed come from 2 models" in " ".join(human.stdout.split())
