"""How ``--help`` renders: full width when piped, and every argument's help text kept.

``full_width_help``: rich renders help at 80 columns when stdout is not a terminal (a file, a pipe,
CI logs) and cuts option names (``--model-base-u…``); piped help gets ``PIPED_HELP_WIDTH``
columns instead ($TERMINAL_WIDTH still wins, as typer reads it).

``keep_argument_help``: typer 0.24 sets a ``TyperArgument``'s ``help`` and then calls click's
``Argument.__init__``, which since click 8.2 takes a ``help`` of its own and resets it to None, so
no argument's help text would ever show. The help is set again after click's constructor. Both
are idempotent and are applied by ``gymstream.cli.main`` before any command is built.
"""

from __future__ import annotations

import sys
from typing import Any

from typer import core, rich_utils

__all__ = ["PIPED_HELP_WIDTH", "full_width_help", "keep_argument_help"]

PIPED_HELP_WIDTH = 200


def full_width_help() -> None:
    """Piped ``--help`` at ``PIPED_HELP_WIDTH`` columns (unless $TERMINAL_WIDTH says else)."""
    if rich_utils.MAX_WIDTH is None and not sys.stdout.isatty():
        rich_utils.MAX_WIDTH = PIPED_HELP_WIDTH


def keep_argument_help() -> None:
    """Make every ``TyperArgument`` keep the help text it was given."""
    original = core.TyperArgument.__init__
    if getattr(original, "keeps_help", False):
        return

    def init(self: core.TyperArgument, *args: Any, help: str | None = None, **kwargs: Any) -> None:
        original(self, *args, help=help, **kwargs)
        self.help = help

    init.keeps_help = True  # type: ignore[attr-defined]  # (a marker: patched once)
    core.TyperArgument.__init__ = init  # type: ignore[method-assign]  # the fix itself
