"""Fixtures of the NeMo Gym compatibility tests (a plugin of tests/conftest.py): real NeMo Gym
0.7.0 servers, once per session.

``nemo_gym_examples`` runs NeMo Gym's policy model (``openai_model``, pointed at gymstream's
scripted model), the ``example_single_tool_call`` and ``example_multi_step`` resources servers
and their ``simple_agent`` instances, from NeMo Gym's own YAML files. Session-scoped, so
once per pytest process: under ``-n 2`` each xdist worker that runs such a test starts its own
set. The cost of a set is about 7 s of CPU per server (NeMo Gym's imports: pandas, scipy), so
about 35 CPU-seconds, 10 s wall on idle 2 cores and up to 2 minutes when they are shared.
(xdist 3.8's ``--dist loadgroup`` did not group tests with pytest 9 here, so no grouping.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nemo_gym_helpers import (
    _START_TIMEOUT_S,
    EXAMPLE_CONFIGS,
    EXAMPLE_INSTANCES,
    MORE_CONFIGS,
    MORE_INSTANCES,
    Instance,
    NemoGymServers,
    run_nemo_gym_servers,
)

from gymstream.testing.thread import ScriptedThread, start_scripted_in_thread

_SERVER_SETS = frozenset({"nemo_gym_examples", "nemo_gym_more"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that may start a NeMo Gym server set may take the set's own start deadline
    (``_START_TIMEOUT_S``, progress-driven: /health polled, a dead process fails at once) on top
    of the suite's per-test timeout, which would otherwise cut the start short on a shared box."""
    for item in items:
        if _SERVER_SETS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.timeout(_START_TIMEOUT_S + 180))


@pytest.fixture(scope="session")
def scripted_model() -> Iterator[ScriptedThread]:
    """gymstream's scripted model: NeMo Gym's policy model and ours, the same for both."""
    with start_scripted_in_thread() as scripted:
        yield scripted


def _server_set(
    instances: tuple[Instance, ...],
    configs: tuple[str, ...],
    scripted: ScriptedThread,
    factory: pytest.TempPathFactory,
    name: str,
) -> Iterator[NemoGymServers]:
    with run_nemo_gym_servers(
        instances, configs, policy_base_url=scripted.url, log_dir=factory.mktemp(name)
    ) as servers:
        yield servers


@pytest.fixture(scope="session")
def nemo_gym_examples(
    scripted_model: ScriptedThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NemoGymServers]:
    """Both seed examples (resources servers + simple_agents) and the policy model."""
    yield from _server_set(
        EXAMPLE_INSTANCES, EXAMPLE_CONFIGS, scripted_model, tmp_path_factory, "nemo_gym_examples"
    )


@pytest.fixture(scope="session")
def nemo_gym_more(
    scripted_model: ScriptedThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NemoGymServers]:
    """mcqa and example_session_state_mgmt (no gymstream port) with their simple_agents."""
    yield from _server_set(
        MORE_INSTANCES, MORE_CONFIGS, scripted_model, tmp_path_factory, "nemo_gym_more"
    )
