"""Prometheus metrics and /healthz of real worker and sink processes, through the real broker,
against the scripted model: scraped mid-run (gated by rows written, never by sleeps) and at the
end; readiness follows the partition assignment."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fixtures.model import ModelFactory
from fixtures.pipeline import (
    AGENT_ONE,
    QUICK_MODEL_ENV,
    ROOT,
    cli_env,
    count_lines,
    gymstream,
    single_tool_input,
    spawn,
    start_worker,
    stop_gracefully,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gymstream.testing.thread import ScriptedThread, start_scripted_in_thread

pytestmark = pytest.mark.kafka

ROWS = 300


@pytest.fixture
def model(make_scripted_model: ModelFactory) -> ScriptedThread:
    # slow enough (two model calls per rollout, 8 in flight) that the run lasts a few seconds
    return make_scripted_model(latency_ms=50)


def _port(log: Path) -> int | None:
    found = re.search(r"metrics on http://[^:]+:(\d+)/metrics", log.read_text())
    return int(found.group(1)) if found else None


def _wait_port(log: Path) -> int:
    wait_until(lambda: _port(log) is not None, 60, f"the metrics server in {log.name}")
    port = _port(log)
    assert port is not None
    return port


def _scrape(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def _lag(samples: list[Sample], consumer: str) -> dict[str, float]:
    return {
        f"{s.labels['topic']}/{s.labels['partition']}": s.value
        for s in samples
        if s.name == "gymstream_consumer_lag" and s.labels["consumer"] == consumer
    }


def _healthz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_worker_and_sink_metrics_move_mid_run_and_settle_at_the_end(
    kafka_bootstrap: str, model: ScriptedThread, tmp_path: Path
) -> None:
    env = cli_env(kafka_bootstrap, model.url)
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    worker_log, sink_log = tmp_path / "worker.log", tmp_path / "sink.log"
    worker = start_worker(AGENT_ONE, env, worker_log, "--metrics-port", "0", "--concurrency", "8")
    sink = None
    try:
        worker_port = _wait_port(worker_log)
        wait_until(lambda: _healthz(worker_port)[0] == 200, 60, "the worker to be assigned")
        out = tmp_path / "out.jsonl"
        sink_args = ["sink", "-o", str(out), "--run-id", "m1", "--follow", "--verbose"]
        sink = spawn([*sink_args, "--metrics-port", "0"], env, sink_log)  # waits for the run
        sink_port = _wait_port(sink_log)
        data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
        produced = gymstream("produce", str(data), "--run-id", "m1", env=env)
        assert produced.returncode == 0, produced.stderr

        # mid-run: gated by progress (rows on disk), not by time
        wait_until(lambda: count_lines(out) >= 30, 120, "30 rows written")
        mid = _scrape(worker_port)
        mid_done = _value(mid, "gymstream_rollouts_succeeded_total", agent=AGENT_ONE)
        assert mid_done >= 30  # the sink wrote them, so Kafka acknowledged them first
        assert _value(mid, "gymstream_rollouts_started_total", agent=AGENT_ONE) >= mid_done
        if mid_done < ROWS:
            assert _value(mid, "gymstream_rollouts_in_flight", agent=AGENT_ONE) >= 1
        assert _value(mid, "gymstream_model_seconds_count", agent=AGENT_ONE) == mid_done

        lag_seen: list[float] = []

        def all_written() -> bool:
            lag_seen.append(sum(_lag(_scrape(worker_port), "worker").values()))
            return count_lines(out) >= ROWS

        wait_until(all_written, 180, f"{ROWS} rows written")
        # measured about every second, the run lasts longer than that: the lag was there
        assert max(lag_seen) > 0

        def settled() -> bool:
            samples = _scrape(worker_port)
            lag = _lag(samples, "worker")
            return (
                _value(samples, "gymstream_rollouts_succeeded_total") == ROWS
                and _value(samples, "gymstream_rollouts_in_flight") == 0
                and len(lag) == 12  # topics.yaml: 12 task partitions, all assigned here
                and set(lag.values()) == {0.0}
            )

        wait_until(settled, 60, "the worker's lag to reach 0 on every partition")
        end = _scrape(worker_port)
        assert _value(end, "gymstream_rollouts_started_total", agent=AGENT_ONE) == ROWS
        assert _value(end, "gymstream_rollouts_failed_total") == 0
        assert _value(end, "gymstream_rollouts_succeeded_total") > mid_done or mid_done == ROWS
        for stage in ("model", "tool", "verify", "rollout"):
            assert _value(end, f"gymstream_{stage}_seconds_count", agent=AGENT_ONE) == ROWS
        assert _value(end, "gymstream_tokens_total", agent=AGENT_ONE, kind="prompt") > ROWS
        assert _value(end, "gymstream_tokens_total", agent=AGENT_ONE, kind="completion") > 0
        assert _value(end, "gymstream_commit_seconds_count", consumer="worker") >= 1
        assert _value(end, "gymstream_model_outage", agent=AGENT_ONE) == 0

        def sink_settled() -> bool:
            samples = _scrape(sink_port)
            lag = _lag(samples, "sink")
            return (
                _value(samples, "gymstream_sink_rows_written_total", agent=AGENT_ONE) == ROWS
                and bool(lag)
                and set(lag.values()) == {0.0}
            )

        wait_until(sink_settled, 60, "the sink's rows and lag")
        tail = _scrape(sink_port)
        assert _value(tail, "gymstream_sink_failures_written_total") == 0
        assert _value(tail, "gymstream_sink_duplicates_dropped_total") == 0
        assert _value(tail, "gymstream_commit_seconds_count", consumer="sink") >= 1
        assert _healthz(sink_port) == (200, {"ready": True, "checks": {"sink": "ok"}})
    finally:
        codes = [stop_gracefully(p) for p in (worker, sink) if p is not None]
    assert codes == [0] * len(codes), worker_log.read_text()[-2000:]


def test_healthz_is_503_without_partitions_and_200_with_them(
    kafka_bootstrap: str, model: ScriptedThread, tmp_path: Path
) -> None:
    env = cli_env(kafka_bootstrap, model.url)
    one_partition = (
        (ROOT / "topics.yaml")
        .read_text()
        .replace("tasks:\n  partitions: 12", "tasks:\n  partitions: 1")
    )
    assert "tasks:\n  partitions: 1\n" in one_partition
    topics = tmp_path / "topics.yaml"
    topics.write_text(one_partition)
    files = ("--topics-file", str(topics))
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, *files, env=env).returncode == 0
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    first = start_worker(AGENT_ONE, env, logs[0], "--metrics-port", "0", *files)
    workers = [first]
    try:
        port_a = _wait_port(logs[0])
        wait_until(lambda: _healthz(port_a)[0] == 200, 60, "the first worker to be assigned")
        assert _healthz(port_a)[1] == {"ready": True, "checks": {f"worker/{AGENT_ONE}": "ok"}}

        workers.append(start_worker(AGENT_ONE, env, logs[1], "--metrics-port", "0", *files))
        port_b = _wait_port(logs[1])
        ports = {port_a: workers[0], port_b: workers[1]}

        def one_each() -> bool:
            return sorted(_healthz(p)[0] for p in ports) == [200, 503]

        # one partition, two workers: whoever the group gives it to is ready, the other not
        wait_until(one_each, 60, "one ready and one unassigned worker")
        idle = next(p for p in ports if _healthz(p)[0] == 503)
        status, body = _healthz(idle)
        assert status == 503
        assert body["ready"] is False
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert "no partition" in checks[f"worker/{AGENT_ONE}"]
        # the holder leaves: the idle one gets the partition and becomes ready
        holder = next(p for p in ports if p != idle)
        assert stop_gracefully(ports[holder]) == 0
        wait_until(lambda: _healthz(idle)[0] == 200, 60, "the idle worker to take over")
    finally:
        for proc in workers:
            if proc.poll() is None:
                stop_gracefully(proc)


def test_a_model_outage_is_a_gauge_and_not_ready_until_the_model_answers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    model = start_scripted_in_thread(latency_ms=5)
    port = model.port
    env = cli_env(kafka_bootstrap, model.url, **QUICK_MODEL_ENV)
    assert gymstream("topics", "apply", "--agent", AGENT_ONE, env=env).returncode == 0
    data = single_tool_input(tmp_path / "in.jsonl", rows=ROWS)
    assert gymstream("produce", str(data), "--run-id", "o1", env=env).returncode == 0
    log = tmp_path / "worker.log"
    worker = start_worker(AGENT_ONE, env, log, "--metrics-port", "0", "--concurrency", "8")
    try:
        metrics_port = _wait_port(log)
        wait_until(lambda: model.server.stats["requests"] >= 40, 60, "some model requests")
        model.stop()

        def down() -> bool:
            status, body = _healthz(metrics_port)
            checks = body["checks"]
            return (
                status == 503
                and isinstance(checks, dict)
                and "model endpoint down" in checks[f"worker/{AGENT_ONE}"]
            )

        wait_until(down, 60, "/healthz to say the model is down")
        assert _value(_scrape(metrics_port), "gymstream_model_outage", agent=AGENT_ONE) == 1
        model = start_scripted_in_thread(port=port, latency_ms=5)  # back, same address
        wait_until(lambda: _healthz(metrics_port)[0] == 200, 60, "ready again")

        def all_done() -> bool:
            done = _value(_scrape(metrics_port), "gymstream_rollouts_succeeded_total")
            return done == ROWS

        wait_until(all_done, 120, f"{ROWS} rollouts")
        end = _scrape(metrics_port)
        assert _value(end, "gymstream_model_outage", agent=AGENT_ONE) == 0
        assert _value(end, "gymstream_rollouts_failed_total") == 0  # the outage waited
    finally:
        code = stop_gracefully(worker)
        model.stop()
    assert code == 0, log.read_text()[-2000:]
