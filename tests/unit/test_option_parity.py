"""docs/nemo_gym_options.md names only options gymstream really has."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer

from gymstream.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
TABLE = (ROOT / "docs" / "nemo_gym_options.md").read_text("utf-8")


def _group() -> click.Group:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    return group


COMMANDS = _group()


def _options(command: str) -> set[str]:
    """Every option name (aliases included) of ``gymstream COMMAND``."""
    params = COMMANDS.commands[command].params
    return {name for p in params if isinstance(p, click.Option) for name in p.opts}


def _named_options() -> set[str]:
    rows = [line.split("|") for line in TABLE.splitlines() if line.startswith("| `")]
    return {opt for row in rows for opt in re.findall(r"--[a-z][a-z-]+", row[2])}


def test_the_table_covers_the_options_users_rely_on() -> None:
    named = _named_options()
    assert {"--agent-map", "--override-agents", "--input", "--num-repeats", "--limit"} <= named


@pytest.mark.parametrize("option", sorted(_named_options()))
def test_every_option_the_table_names_exists(option: str) -> None:
    known = _options("collect") | _options("produce") | _options("retry-failures")
    assert option in known


@pytest.mark.parametrize("command", ["collect", "produce"])
def test_dataset_commands_take_the_same_names(command: str) -> None:
    names = _options(command)
    for option in ("--input", "--input-jsonl-fpath", "--bootstrap-server", "--agent-map"):
        assert option in names, (command, option)


def test_every_kafka_command_accepts_bootstrap_server() -> None:
    kafka_commands = [name for name in COMMANDS.commands if "--bootstrap" in _options(name)]
    assert {"collect", "produce", "worker", "sink", "stream", "retry-failures"} <= set(
        kafka_commands
    )
    for name in kafka_commands:
        assert "--bootstrap-server" in _options(name), name
