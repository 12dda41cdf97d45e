"""Where the commands write: ``console`` (stderr: progress, errors), ``out`` (stdout: summaries),
and ``fail``, the one way a command says ``error: ...`` and exits."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

__all__ = ["console", "fail", "out"]

console = Console(stderr=True)
# wide enough for agent names when the output is not a terminal (logs, CI)
out = Console(width=None if sys.stdout.isatty() else 120)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (user text is never read as markup) and return the exit."""
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)
