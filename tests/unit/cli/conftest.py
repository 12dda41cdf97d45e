"""The CLI's unit tests import typer in-process, and importing typer warns once.

The pinned typer re-exports ``click.utils`` helpers (``get_binary_stream``, ``get_text_stream``)
that the pinned Click deprecates; with ``filterwarnings = error`` that would fail collection.
Import it here first with exactly those warnings ignored (any other warning still fails).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore",
        message=r"'click\.utils\.\w+' is deprecated",
        category=DeprecationWarning,
    )
    import typer  # noqa: F401
