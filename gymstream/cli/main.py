"""The `gymstream` command: registers each command group; holds no logic of its own."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from gymstream.cli import kafka, logs, model
from gymstream.cli.collect import collect_command
from gymstream.cli.common import kafka_settings_help
from gymstream.cli.demo import demo_command
from gymstream.cli.exit_codes import EXIT_CODES_HELP
from gymstream.cli.help_format import full_width_help, keep_argument_help
from gymstream.cli.produce import produce_command
from gymstream.cli.retry import retry_failures_command
from gymstream.cli.runs import runs_app
from gymstream.cli.sink import sink_command
from gymstream.cli.status import StatusCommand, status_command
from gymstream.cli.stream import stream_command
from gymstream.cli.topics import topics_app
from gymstream.cli.worker import worker_command
from gymstream.settings import use_kafka_config_file

full_width_help()  # before any command renders its help (cli/help_format.py says why)
keep_argument_help()

app = typer.Typer(
    name="gymstream",
    help=(
        "Collect reinforcement-learning rollouts for LLMs over Apache Kafka, NeMo Gym "
        "compatible.\n\nStart with `gymstream demo`: it runs the whole pipeline on the two "
        "example environments with no external services."
    ),
    epilog=kafka_settings_help(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"gymstream {metadata.version('gymstream')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    log_format: Annotated[
        logs.LogFormat | None,
        typer.Option(
            "--log-format",
            help="text, or json: one JSON object per log line (time, level, logger, message, "
            "extra fields) for log shippers; progress lines too. Default: $GYMSTREAM_LOG_FORMAT "
            "or text.",
            show_default=False,
        ),
    ] = None,
    kafka_config: Annotated[
        Path | None,
        typer.Option(
            "--kafka-config",
            help="A Kafka client properties file (key=value in Kafka's own names, e.g. linger.ms, "
            "sasl.kerberos.service.name; producer. / consumer. prefixes for one kind of client) "
            "for every client of the command. Default: $GYMSTREAM_KAFKA_CONFIG_FILE.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Collect reinforcement-learning rollouts for LLMs over Apache Kafka, NeMo Gym compatible."""
    logs.choose_format(log_format)
    if kafka_config is not None:
        use_kafka_config_file(kafka_config)


app.command("demo")(demo_command)
app.command("collect", epilog=EXIT_CODES_HELP)(collect_command)
app.command("produce", epilog=EXIT_CODES_HELP)(produce_command)
app.command("worker")(worker_command)
app.command("sink", epilog=EXIT_CODES_HELP)(sink_command)
app.command("retry-failures")(retry_failures_command)
app.command("stream")(stream_command)
app.command("status", cls=StatusCommand)(status_command)
app.add_typer(topics_app, name="topics")
app.add_typer(runs_app, name="runs")
app.add_typer(kafka.app, name="kafka")
app.add_typer(model.app, name="model")


if __name__ == "__main__":  # pragma: no cover
    app()
