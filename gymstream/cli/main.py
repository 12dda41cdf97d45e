"""The `gymstream` command: registers each command group; holds no logic of its own."""

from __future__ import annotations

import typer

from gymstream.cli import kafka, model

app = typer.Typer(
    name="gymstream",
    help=(
        "Collect reinforcement-learning rollouts for LLMs over Apache Kafka, NeMo Gym compatible.\n\n"
        "Start with `gymstream demo`: it runs the whole pipeline on the two example environments."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(kafka.app, name="kafka")
app.add_typer(model.app, name="model")


if __name__ == "__main__":  # pragma: no cover
    app()
