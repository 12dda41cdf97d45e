"""The house rules that a reviewer would otherwise check by eye (docs/architecture.md, STYLE.md).

- No function in ``gymstream/`` is over 80 lines: long functions are where a runtime starts to
  fight itself (issue 18); split them into steps with names.
- Nothing branches on the kind of environment with ``isinstance``: the worker runs one ``Agent``
  protocol, whatever implements it.
- No ``common.py``, ``utils.py`` or ``helpers.py``: a module is named for its one job.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gymstream"
MAX_FUNCTION_LINES = 80
ENVIRONMENT_KINDS = frozenset(
    {"RemoteAgent", "ResourcesServerEnvironment", "SessionEnvironment", "LocalEnvironment"}
)
# The one place allowed to look at the kind: ``run_rollout(row, env)``'s convenience for tests
# and the bench picks the session adapter of the environment object it is handed; the worker
# picks it from the agent's plan (``rollout/connect.open_agent``) and never asks.
KIND_ALLOWED = frozenset({("gymstream/rollout/sessions.py", "sessions_of")})
VAGUE_NAMES = frozenset({"common.py", "utils.py", "helpers.py", "misc.py"})


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_no_function_is_over_80_lines() -> None:
    too_long = []
    for path in _modules():
        for node in _functions(ast.parse(path.read_text("utf-8"))):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def _names_in(node: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def test_nothing_branches_on_the_environment_kind() -> None:
    branches = []
    for path in _modules():
        where = str(path.relative_to(PACKAGE.parent))
        for function in _functions(ast.parse(path.read_text("utf-8"))):
            if (where, function.name) in KIND_ALLOWED:
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "isinstance"
                    and len(node.args) == 2
                    and _names_in(node.args[1]) & ENVIRONMENT_KINDS
                ):
                    branches.append(f"{where}:{node.lineno} in {function.name}")
    assert not branches, f"isinstance on an environment kind: {branches}"


def test_no_module_has_a_vague_name() -> None:
    vague = [str(p.relative_to(PACKAGE.parent)) for p in _modules() if p.name in VAGUE_NAMES]
    assert not vague, f"modules named for no job: {vague}"
