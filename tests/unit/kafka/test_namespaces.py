"""Namespaces scope the task topics and worker groups, and no two of them can share a name."""

from __future__ import annotations

import itertools

import pytest

from gymstream.errors import ConfigError
from gymstream.kafka.topics import SHARED_NAMESPACE, load_layout, private_namespace

LAYOUT = load_layout(prefix="p1")


def test_the_shared_namespace_keeps_today_s_names() -> None:
    assert LAYOUT.namespace == SHARED_NAMESPACE
    assert LAYOUT.tasks("a") == "p1.tasks.a"
    assert LAYOUT.worker_group("a") == "p1-worker-a"


def test_a_namespace_scopes_task_topics_and_worker_groups_only() -> None:
    scoped = LAYOUT.scoped("team-a")
    assert scoped.tasks("my agent") == "p1.scope.team-a.tasks.my_agent"
    assert scoped.worker_group("a") == "p1.scope.team-a.worker.a"
    # results, failures, runs and sink groups are the deployment's: keyed and filtered by run
    assert (scoped.results, scoped.failures, scoped.runs) == (
        "p1.results",
        "p1.failures",
        "p1.runs",
    )
    assert scoped.sink_group("r1") == LAYOUT.sink_group("r1")


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "x" * 81, "ü"])
def test_a_bad_namespace_is_refused_with_its_rule(bad: str) -> None:
    with pytest.raises(ConfigError, match="no dots"):
        LAYOUT.scoped(bad)


def test_no_two_namespaces_and_agents_make_the_same_name() -> None:
    namespaces = [SHARED_NAMESPACE, "tasks", "scope", "a", "a-tasks", "worker"]
    agents = ["a", "tasks.a", "scope.a.tasks.a", "a.tasks.a", "worker.a"]
    topics: dict[str, tuple[str, str]] = {}
    groups: dict[str, tuple[str, str]] = {}
    for ns, agent in itertools.product(namespaces, agents):
        layout = LAYOUT.scoped(ns)
        assert topics.setdefault(layout.tasks(agent), (ns, agent)) == (ns, agent)
        assert groups.setdefault(layout.worker_group(agent), (ns, agent)) == (ns, agent)


def test_a_run_s_private_namespace_is_its_own_and_stable() -> None:
    first = private_namespace("r/1")
    assert first == private_namespace("r/1")  # a resume finds its leftovers
    assert first.startswith("run-r_1-")
    assert private_namespace("r_1") != first  # same once made safe, told apart by the hash
    long = private_namespace("x" * 300)
    assert LAYOUT.scoped(long).namespace == long  # always a valid name
