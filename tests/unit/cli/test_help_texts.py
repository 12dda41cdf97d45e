"""Every option and argument says what it is; NeMo Gym's names are named; piped help is uncut."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from gymstream.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
TABLE = (ROOT / "docs" / "nemo_gym_options.md").read_text("utf-8")
ROOT_COMMAND = typer.main.get_command(app)


def _commands(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, f"{path} {name}")


COMMANDS = dict(_commands(ROOT_COMMAND, "gymstream"))


def _params() -> list[tuple[str, str]]:
    return [
        (path, param.name or "?")
        for path, command in COMMANDS.items()
        for param in command.params
        if not getattr(param, "hidden", False)
    ]


@pytest.mark.parametrize(("path", "name"), _params())
def test_every_option_and_argument_has_help(path: str, name: str) -> None:
    (param,) = [p for p in COMMANDS[path].params if p.name == name]
    text = getattr(param, "help", None)
    assert text, f"`{path}`: {name} has no help text"


def test_an_arguments_help_is_rendered() -> None:
    """typer 0.24 with click 8.5 dropped every argument's help (cli/help_format.py)."""
    shown = CliRunner().invoke(app, ["produce", "--help"])
    assert "NeMo Gym JSONL dataset (or --input)." in shown.output


def _nemo_gym_names() -> list[tuple[str, str]]:
    """(gymstream option, NeMo Gym name) of each row of docs/nemo_gym_options.md."""
    pairs = []
    for line in TABLE.splitlines():
        if not line.startswith("| `"):
            continue
        cells = line.split("|")
        names = re.findall(r"`([A-Za-z_]+)`", cells[1])
        options = re.findall(r"--[a-z][a-z-]+", cells[2])
        if names and options:
            pairs.append((options[0], names[0]))
    return pairs


@pytest.mark.parametrize("command", ["collect", "produce"])
def test_collect_and_produce_name_nemo_gyms_option(command: str) -> None:
    checked = 0
    for option, name in _nemo_gym_names():
        for param in COMMANDS[f"gymstream {command}"].params:
            if isinstance(param, click.Option) and option in param.opts:
                text = param.help or ""
                assert "NeMo Gym" in text, (command, option)
                assert name in text, (command, option, name)
                checked += 1
    assert checked >= 9  # input, output, agent name/map, limit, repeats, seeds, params, run id


def test_collect_names_num_samples_in_parallel() -> None:
    (concurrency,) = [
        p for p in COMMANDS["gymstream collect"].params if "--concurrency" in getattr(p, "opts", [])
    ]
    assert "num_samples_in_parallel" in (concurrency.help or "")


def test_piped_help_is_full_width() -> None:
    """Not on a terminal (a pipe here), --help is not cut at 80 columns."""
    done = subprocess.run(
        [sys.executable, "-m", "gymstream.cli.main", "collect", "--help"],
        capture_output=True,  # stdout is a pipe, as in `gymstream collect --help | less`
        text=True,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--num-repeats-per-agent" in done.stdout
    assert "--input,--input-jsonl-fpath" in done.stdout
    assert "…" not in done.stdout
