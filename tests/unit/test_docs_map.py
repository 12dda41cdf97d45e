"""The README stays short and the docs stay true to the tree: every package of gymstream/ is on
docs/architecture.md's map, and every relative link of the README and docs/ leads to a file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
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
