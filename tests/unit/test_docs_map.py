"""The README stays short and the docs stay true to the code.

Every package of gymstream/ is on docs/architecture.md's map, docs/configuration.md names every
setting, docs/operations.md's metrics table names every metric and only those, and every relative
link of the README and docs/ leads to a file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from gymstream import settings
from gymstream.localkafka.settings import LocalKafkaSettings
from gymstream.observe.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
OPERATIONS = ROOT / "docs" / "operations.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
README_LIMIT = 8000  # characters: a newcomer reads it in 5 minutes (issue 18); reference in docs/
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _tree(text: str) -> str:
    """The code block under '## The tree'."""
    found = re.search(r"^## The tree[^\n]*\n+```\n(.*?)\n```", text, re.DOTALL | re.MULTILINE)
    assert found, "docs/architecture.md has no '## The tree' code block"
    return found.group(1)


def _packages() -> list[str]:
    """Every package under gymstream/, as the map names it: its folder name and a slash."""
    package = ROOT / "gymstream"
    return sorted(f"{p.parent.name}/" for p in package.rglob("__init__.py") if p.parent != package)


def test_the_readme_reads_in_five_minutes() -> None:
    size = len(README.read_text("utf-8"))
    assert size < README_LIMIT, f"README.md is {size} characters; move reference to docs/"


def test_the_readme_names_the_test_command_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert "exec ./scripts/test" in ci
    assert "./scripts/test\n" in README.read_text("utf-8")


def missing_from(tree: str) -> list[str]:
    """The packages and top-level modules of gymstream/ that ``tree`` does not name."""
    modules = [p.name for p in (ROOT / "gymstream").glob("*.py") if p.name != "__init__.py"]
    return [name for name in [*_packages(), *sorted(modules)] if name not in tree]


def test_every_package_and_top_level_module_is_on_the_map() -> None:
    missing = missing_from(_tree(ARCHITECTURE.read_text("utf-8")))
    assert not missing, f"docs/architecture.md's tree lacks {missing}"


def test_the_map_check_catches_a_missing_package() -> None:
    tree = _tree(ARCHITECTURE.read_text("utf-8"))
    assert missing_from(tree.replace("sink/", "")) == ["sink/"]
    assert missing_from(tree.replace("collect.py", "")) == ["collect.py"]


@pytest.mark.parametrize(
    "document",
    [README, *sorted((ROOT / "docs").glob("*.md"))],
    ids=lambda p: p.name,
)
def test_relative_links_lead_to_files(document: Path) -> None:
    links = [
        link
        for link in _LINK.findall(document.read_text("utf-8"))
        if not re.match(r"[a-z]+:", link)  # http:, https:, mailto:
    ]
    broken = [link for link in links if not (document.parent / link).exists()]
    assert not broken, f"{document.name}: links to missing files {broken}"


def documented_metrics(text: str) -> list[str]:
    """The metric names of the table's first column (``_tool_seconds`` continues the row's first
    name's ``gymstream_`` prefix)."""
    names = []
    for line in text.splitlines():
        if not line.startswith("| `gymstream_"):
            continue
        cells = re.findall(r"`([a-z_]+)`", line.split("|")[1])
        names += [cells[0], *(f"gymstream{c}" for c in cells[1:])]
    return names


def test_the_metrics_table_names_every_metric_and_only_those() -> None:
    assert sorted(documented_metrics(OPERATIONS.read_text("utf-8"))) == sorted(METRIC_NAMES)
    one_row = "| `gymstream_model_seconds`, `_tool_seconds` | agent | histograms |"
    assert documented_metrics(one_row) == ["gymstream_model_seconds", "gymstream_tool_seconds"]


SETTINGS: tuple[type[BaseSettings], ...] = (
    settings.KafkaSettings,
    settings.ModelSettings,
    settings.RetrySettings,
    settings.ServerSettings,
    settings.WorkerSettings,
    settings.TopicSettings,
    settings.ScopeSettings,
    settings.EventLoopSettings,
    settings.MetricsSettings,
    settings.DisplaySettings,
    LocalKafkaSettings,
)
_YAML_ONLY = {("ModelSettings", "vllm")}  # a NeMo Gym vllm_model's options, from its YAML


def env_names(model: type[BaseSettings], field: str) -> list[str]:
    """The variables that set ``field``: its aliases, else prefix + name."""
    alias = model.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [a for a in alias.choices if isinstance(a, str) and a.isupper()]
    return [f"{model.model_config.get('env_prefix', '')}{field}".upper()]


def undocumented(model: type[BaseSettings], text: str) -> list[str]:
    """Settings of ``model`` that ``text`` does not name: in full, or as ``_SUFFIX`` on a line
    that names a variable of the same prefix (``GYMSTREAM_KAFKA_SSL_CAFILE``, ``_SSL_KEYFILE``)."""
    prefix = str(model.model_config.get("env_prefix", "")).upper()
    lines = text.splitlines()
    missing = []
    for field in model.model_fields:
        if (model.__name__, field) in _YAML_ONLY:
            continue
        names = env_names(model, field)
        short = [f"`{n.removeprefix(prefix)}`" if n.startswith(prefix) else "" for n in names]
        named = any(f"`{n}`" in text for n in names) or any(
            f"`{prefix}" in line and s and f"`_{s.strip('`')}`" in line
            for line in lines
            for s in short
        )
        if not named:
            missing.append(names[0])
    return missing


@pytest.mark.parametrize("model", SETTINGS, ids=lambda m: m.__name__)
def test_the_configuration_page_names_every_setting(model: type[BaseSettings]) -> None:
    assert undocumented(model, CONFIGURATION.read_text("utf-8")) == []


def test_the_settings_check_catches_a_missing_variable() -> None:
    text = "| `GYMSTREAM_SERVER_TIMEOUT_S`, `_CONNECT_TIMEOUT_S` | |"
    assert undocumented(settings.ServerSettings, text) == ["GYMSTREAM_SERVER_MAX_CONNECTIONS"]
