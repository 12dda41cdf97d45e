"""``config_paths:`` inside NeMo Gym YAML files, followed as NeMo Gym 0.7.0 follows them.

NeMo Gym (``GlobalConfigDictParser.load_extra_config_paths``) reads each listed file's own
``config_paths`` and appends every entry not listed yet (an entry listed twice, a cycle among
them, is read once: NeMo Gym prints a note and goes on, and so does gymstream, as a warning).
The merge order is the include tree flattened post-order: a file comes after every file it
pulled in (so it overrides them), and the files listed together keep their order, each with
its own includes just before it (so a later one overrides an earlier one and its includes).

A relative entry is looked up as NeMo Gym does, the first that exists: under each
``NEMO_GYM_EXTRA_ROOTS`` directory (``os.pathsep``-separated, from the environment mapping the
boundary passes in), then the working directory. (NeMo Gym also looks in its own install
folder, for the configs it ships; gymstream has none: run from a NeMo Gym checkout, or name it
in ``NEMO_GYM_EXTRA_ROOTS``.) A missing file, or a ``config_paths`` that is not a list of
paths, is a ``ConfigError`` naming the file that lists it.

``--config "+config_paths=[a.yaml,b.yaml]"`` (``ng_run``'s spelling) is read as ``a.yaml,b.yaml``
(``split_config_option``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gymstream.errors import ConfigError

__all__ = ["CONFIG_PATHS", "EXTRA_ROOTS", "expand_config_paths", "split_config_option"]

log = logging.getLogger(__name__)

CONFIG_PATHS = "config_paths"
EXTRA_ROOTS = "NEMO_GYM_EXTRA_ROOTS"
_OPTION_PREFIXES = ("++config_paths=", "+config_paths=", "config_paths=")


def split_config_option(text: str) -> list[str]:
    """The files of a ``--config`` value: ``a.yaml,b.yaml`` or ``+config_paths=[a.yaml,b.yaml]``."""
    value = text.strip()
    for prefix in _OPTION_PREFIXES:
        if value.startswith(prefix):
            value = value.removeprefix(prefix).strip()
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            break
    return [p.strip().strip("'\"") for p in value.split(",") if p.strip()]


def _roots(cwd: Path, environ: Mapping[str, str]) -> list[Path]:
    extra = [Path(d) for d in environ.get(EXTRA_ROOTS, "").split(os.pathsep) if d]
    return [*extra, cwd]


def _resolve(entry: str, cwd: Path, environ: Mapping[str, str], listed_in: Path) -> Path:
    path = Path(entry)
    candidates = [path] if path.is_absolute() else [root / path for root in _roots(cwd, environ)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"{listed_in}: config_paths entry '{entry}' was not found (looked in: {looked}); "
        f"paths are relative to the working directory or a {EXTRA_ROOTS} directory, as in NeMo Gym"
    )


def _entries(path: Path) -> list[str]:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    value = data.get(CONFIG_PATHS) if isinstance(data, dict) else None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {CONFIG_PATHS} must be a list of paths, got {value!r:.200}")
    return value


def expand_config_paths(
    paths: Sequence[Path], *, cwd: Path, environ: Mapping[str, str]
) -> list[Path]:
    """``paths`` and every file their ``config_paths`` pull in, in NeMo Gym's merge order."""
    files = [Path(p) for p in paths]
    keys = [p.resolve() for p in files]
    children: list[list[int]] = [[] for _ in files]
    duplicates: list[str] = []
    index = 0
    while index < len(files):  # files grows as it is read (NeMo Gym's breadth-first listing)
        for entry in _entries(files[index]):
            found = _resolve(entry, cwd, environ, files[index])
            if found.resolve() in keys:
                duplicates.append(entry)
                continue
            files.append(found)
            keys.append(found.resolve())
            children.append([])
            children[index].append(len(files) - 1)
        index += 1
    if duplicates:
        log.warning(
            "config_paths: these files are listed more than once and read once: %s",
            ", ".join(duplicates),
        )
    order: list[int] = []
    pending = [(root, False) for root in reversed(range(len(paths)))]
    while pending:
        node, visited = pending.pop()
        if visited:
            order.append(node)
            continue
        pending.append((node, True))
        pending.extend((child, False) for child in reversed(children[node]))
    return [files[i] for i in order]
