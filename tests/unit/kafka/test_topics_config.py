"""Topic layout from topics.yaml, and the agent/model configuration files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gymstream.errors import ConfigError
from gymstream.kafka.topics import _differences, default_topics_text, load_layout
from gymstream.nemo_gym.config.agents import load_config, resolve_model
from gymstream.settings import ModelSettings


def test_names_come_from_one_prefix() -> None:
    layout = load_layout(prefix="p1")
    assert layout.tasks("my agent/x") == "p1.tasks.my_agent_x"  # unsafe characters replaced
    assert (layout.results, layout.failures, layout.runs) == (
        "p1.results",
        "p1.failures",
        "p1.runs",
    )
    assert layout.worker_group("a") == "p1-worker-a"
    assert layout.sink_group("r/1") == "p1-sink-r_1"


@pytest.mark.parametrize(("brokers", "rf", "isr"), [(1, 1, 1), (3, 3, 2), (5, 3, 2)])
def test_auto_replication_fits_the_cluster(brokers: int, rf: int, isr: int) -> None:
    specs = {s.name: s for s in load_layout(prefix="p").specs(["a"], brokers)}
    results = specs["p.results"]
    assert results.replication_factor == rf
    assert results.configs["min.insync.replicas"] == str(isr)
    assert specs["p.runs"].configs["cleanup.policy"] == "compact,delete"
    assert specs["p.tasks.a"].partitions == 12


def test_a_fixed_replication_larger_than_the_cluster_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text("defaults:\n  replication_factor: 3\n")
    with pytest.raises(ConfigError, match="needs 3 brokers"):
        load_layout(path, "p").specs(["a"], brokers=1)


def test_a_bad_topics_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text("results:\n  partitions: zero\n")
    with pytest.raises(ConfigError, match=r"topics.yaml: results.partitions"):
        load_layout(path, "p")


def test_differences_are_reported_not_changed() -> None:
    spec = load_layout(prefix="p").specs([], 1)[0]
    meta = {"partitions": [{"replicas": [1]}] * 3}
    diffs = _differences(spec, meta, {"retention.ms": "1"})
    assert "partitions 3 (topics.yaml says 12)" in diffs
    assert "retention.ms=1 (topics.yaml says 604800000)" in diffs


def test_environment_configs_are_found_and_merged(tmp_path: Path) -> None:
    config = load_config()
    assert {"example_single_tool_call_simple_agent", "example_multi_step_simple_agent"} <= set(
        config.agents
    )
    extra = tmp_path / "model.yaml"
    extra.write_text(
        "agents:\n  example_multi_step_simple_agent:\n    environment: example_multi_step\n"
        "    max_steps: 3\nmodels:\n  policy_model:\n    base_url: http://yaml:1/v1\n"
        "    name: from-yaml\n"
    )
    env_file = next(p for p in (Path(__file__).parents[3] / "environments").glob("*/config.yaml"))
    merged = load_config([env_file, extra])
    assert merged.agent("example_multi_step_simple_agent").max_steps == 3
    with pytest.raises(ConfigError, match="known agents"):
        merged.agent("nope")


def test_model_precedence_yaml_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "model.yaml"
    extra.write_text(
        "agents:\n  a:\n    environment: example_single_tool_call\n"
        "models:\n  policy_model:\n    base_url: http://yaml:1/v1\n    name: from-yaml\n"
    )
    config = load_config([extra])
    monkeypatch.delenv("GYMSTREAM_MODEL_BASE_URL", raising=False)
    monkeypatch.setenv("GYMSTREAM_MODEL_NAME", "from-env")
    model = resolve_model(config, "a", {"base_url": None}, ModelSettings())
    assert (model.base_url, model.name) == ("http://yaml:1/v1", "from-env")
    model = resolve_model(config, "a", {"name": "from-cli"}, ModelSettings())
    assert model.name == "from-cli"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    model = resolve_model(config, "a", {}, ModelSettings())
    assert model.api_key is not None
    assert "sk-secret" not in repr(model)


def test_a_bad_config_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  a:\n    environment: x\n    max_steps: -1\n")
    with pytest.raises(ConfigError, match=r"agents.a.max_steps"):
        load_config([bad])


def test_the_packaged_topics_file_is_the_repositorys_copy() -> None:
    """topics.yaml at the repository root is the user-facing copy of the package data file."""
    root = Path(__file__).resolve().parents[3]
    assert (root / "topics.yaml").read_text("utf-8") == default_topics_text()


def test_the_default_layout_is_the_packaged_file_not_built_in_fallbacks() -> None:
    """Without a path, the packaged file decides: a compacted runs topic, 12 task partitions."""
    specs = {s.name: s for s in load_layout(prefix="p").specs(["a"], brokers=1)}
    assert specs["p.runs"].configs["cleanup.policy"] == "compact,delete"
    assert specs["p.runs"].configs["retention.ms"] == "7776000000"
    assert specs["p.tasks.a"].partitions == 12
