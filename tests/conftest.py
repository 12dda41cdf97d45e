"""Shared fixtures: a Kafka broker, a restartable 3-node cluster, unique topic and group names.

Where ``kafka_bootstrap`` gets its broker, first that works:

1. ``GYMSTREAM_TEST_BOOTSTRAP`` (a running cluster, used as is);
2. the project's local KRaft broker (gymstream.localkafka: Java 17+, Maven once for the jars),
   started once per pytest run on a free port in a temporary data directory;
3. testcontainers' KafkaContainer, if a Docker engine answers (one container per xdist worker);
4. otherwise the test fails with a message saying how to get a broker. Never skipped.

Sharing one local broker under pytest-xdist: the workers take an fcntl lock on a file in the
run's common temp folder (the master's basetemp, parent of each worker's); the first one in starts
the broker and writes its bootstrap into ``kafka-session.json``, the others read it. Nobody stops it
during the run: ``pytest_sessionfinish`` in the controlling process (the xdist master, or the only
process without xdist) runs after every worker has finished, and stops it there.

``kafka_cluster`` is a 3-node local cluster per worker (tests stop and start its brokers, so it is
never shared between processes); before each test every stopped node is started again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_helpers import NameFactory

from gymstream.errors import KafkaSetupError
from gymstream.localkafka import (
    Cluster,
    fetch_jars,
    find_free_base_port,
    start_cluster,
    stop_cluster,
)
from gymstream.localkafka.lock import file_lock
from gymstream.localkafka.settings import LocalKafkaSettings

pytest_plugins = ["nemo_gym_fixtures"]  # real NeMo Gym 0.7.0 servers (tests/compat)

BOOTSTRAP_ENV = "GYMSTREAM_TEST_BOOTSTRAP"
_SESSION_FILE = "kafka-session.json"
_DOCKER_IMAGE = "confluentinc/cp-kafka:7.6.0"  # the image testcontainers' KafkaContainer targets
_HOW_TO_GET_A_BROKER = (
    "no Kafka broker for the integration tests. Get one of: (a) Java 17+ and Maven on PATH "
    "(Debian/Ubuntu: apt-get install openjdk-17-jdk-headless maven), then the tests start a local "
    "broker themselves; (b) a running Docker engine; (c) a running cluster, named with "
    f"{BOOTSTRAP_ENV}=host:port (e.g. `gymstream kafka start` or `docker compose up -d kafka`)"
)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _run_dir(config: pytest.Config) -> Path:
    """The temp folder shared by every process of this pytest run (xdist master's basetemp)."""
    basetemp = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # as xdist
    return Path(basetemp).parent if _is_xdist_worker(config) else Path(basetemp)


def _launcher_settings() -> LocalKafkaSettings:
    return LocalKafkaSettings()


def _local_broker(run_dir: Path, settings: LocalKafkaSettings) -> str:
    """Bootstrap of the run's shared local broker, starting it if this process is first."""
    with file_lock(run_dir / "kafka-session.lock"):
        session_file = run_dir / _SESSION_FILE
        if session_file.exists():
            return str(json.loads(session_file.read_text("utf-8"))["bootstrap"])
        data_dir = run_dir / "kafka-shared"
        cluster = start_cluster(
            data_dir,
            brokers=1,
            port=find_free_base_port(1),
            libs=fetch_jars(settings.cache_dir, mvn=settings.mvn),
            java=settings.java,
            heap_mb=settings.heap_mb,
            timeout_s=settings.start_timeout_s,
        )
        session_file.write_text(
            json.dumps({"bootstrap": cluster.bootstrap, "data_dir": str(data_dir)}), "utf-8"
        )
        return cluster.bootstrap


def _docker_broker(stack: contextlib.ExitStack) -> str:
    """Bootstrap of a KafkaContainer owned by this process (stopped when ``stack`` closes)."""
    import docker  # type: ignore[import-untyped]  # only where the local launcher failed
    from testcontainers.community.kafka import KafkaContainer

    docker.from_env(timeout=5).ping()
    container = (
        KafkaContainer(_DOCKER_IMAGE)
        .with_kraft()
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    container.start()
    stack.callback(container.stop)
    return str(container.get_bootstrap_server())


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """``host:port[,...]`` of a Kafka broker shared by the whole run (see the module docstring)."""
    from_env = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if from_env:
        yield from_env
        return
    problems: list[str] = []
    try:
        local = _local_broker(_run_dir(request.config), _launcher_settings())
    except KafkaSetupError as exc:
        problems.append(f"local broker: {str(exc).splitlines()[0]}")
    else:
        yield local
        return
    with contextlib.ExitStack() as stack:
        try:
            bootstrap = _docker_broker(stack)
        except Exception as exc:  # boundary: any Docker trouble means "no Docker broker"
            problems.append(f"docker: {type(exc).__name__}: {str(exc)[:200]}")
        else:
            yield bootstrap
            return
    pytest.fail(f"{_HOW_TO_GET_A_BROKER}. Tried: {'; '.join(problems)}", pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the run's shared local broker, once every worker is done (controlling process only)."""
    if _is_xdist_worker(session.config):
        return
    session_file = _run_dir(session.config) / _SESSION_FILE
    if session_file.exists():
        stop_cluster(Path(json.loads(session_file.read_text("utf-8"))["data_dir"]), timeout_s=10)
        session_file.unlink()


@pytest.fixture(scope="session")
def _kafka_cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    settings = _launcher_settings()
    data_dir = tmp_path_factory.mktemp("kafka-cluster")
    try:
        cluster = start_cluster(
            data_dir,
            brokers=3,
            port=find_free_base_port(3),
            libs=fetch_jars(settings.cache_dir, mvn=settings.mvn),
            java=settings.java,
            heap_mb=settings.heap_mb,
            timeout_s=settings.start_timeout_s,
        )
    except KafkaSetupError as exc:
        problem = str(exc)
    else:
        problem = ""
    if problem:
        pytest.fail(
            "kafka_cluster could not start a local 3-node cluster; its tests stop and start "
            f"brokers, so {BOOTSTRAP_ENV} cannot stand in. It needs Java 17+ and Maven "
            f"(apt-get install openjdk-17-jdk-headless maven). The launcher said: {problem}",
            pytrace=False,
        )
    try:
        yield cluster
    finally:
        cluster.stop(timeout_s=2)  # throwaway data: skip the 5 s KRaft graceful resign


@pytest.fixture
def kafka_cluster(_kafka_cluster_session: Cluster) -> Cluster:
    """A 3-node local cluster (RF up to 3) whose nodes a test may stop and start.

    One per xdist worker, kept for the session; any node a previous test left stopped is started
    again before the test runs. Use ``asyncio.to_thread(cluster.stop_broker, n)`` in async tests.
    """
    for node_id in _kafka_cluster_session.node_ids:
        if not _kafka_cluster_session.is_running(node_id):
            _kafka_cluster_session.start_broker(node_id)
    return _kafka_cluster_session


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> NameFactory:
    """Factory of topic / group names unique to this test and run: ``unique_name("tasks")``.

    Names read ``<prefix>-<test name>-<8 hex>`` (only characters Kafka allows), so tests can share a
    broker, run in parallel and be re-run without colliding.
    """
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:60]

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make
