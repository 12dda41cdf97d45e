"""Entry point of one worker process: the ``gymstream worker`` command. No logic of its own.

Usable as ``python -m workers.run --agent NAME`` (the same as ``gymstream worker``): it parses
the options and settings, builds the worker and serves until SIGTERM/SIGINT
(``gymstream.worker.serve.serve_until_signalled``).
"""

from __future__ import annotations

import typer

from gymstream.cli.worker import worker_command


def main() -> None:
    """Run one worker process with the command line's options."""
    typer.run(worker_command)


if __name__ == "__main__":  # pragma: no cover
    main()
