"""``config_paths:`` inside YAML files: gymstream's merge equals NeMo Gym 0.7.0's own parser's.

A tree of files that include one another (relative to the working directory, nested, listed
twice, in a cycle), two files given at the top; each key's winner shows the merge order. NeMo
Gym's ``get_global_config_dict`` (``ng_run "+config_paths=[...]"``) and gymstream's
``merge_files`` read the same tree in the same directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fixtures.nemo_gym_servers import nemo_gym_merge
from omegaconf import OmegaConf

from gymstream.errors import ConfigError
from gymstream.nemo_gym.config.paths import split_config_option
from gymstream.nemo_gym.config.translate import load_any_config, merge_files

KEYS = ("by_main", "siblings", "include_of_later", "cycle", "top_level", "deep")
SERVER = {"resources_servers": {"example_single_tool_call": {"entrypoint": "app.py"}}}
TREE = {
    "main.yaml": {
        "config_paths": ["conf/a.yaml", "conf/b.yaml"],
        "weather": SERVER,
        "error_on_almost_servers": False,  # a bare instance, so that NeMo Gym parses
        "by_main": "main",
        "top_level": "main",
    },
    "conf/a.yaml": {
        "config_paths": ["conf/c.yaml"],
        "by_main": "a",
        "siblings": "a",
        "include_of_later": "a",
        "deep": "a",
    },
    "conf/b.yaml": {"config_paths": ["conf/d.yaml"], "siblings": "b"},
    "conf/c.yaml": {"config_paths": ["main.yaml", "conf/e.yaml"], "cycle": "c", "deep": "c"},
    "conf/d.yaml": {"include_of_later": "d", "cycle": "d"},
    "conf/e.yaml": {"deep": "e", "cycle": "e"},
    "other.yaml": {"config_paths": ["conf/d.yaml"], "top_level": "other"},
}


def write_tree(root: Path) -> None:
    for name, data in TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(yaml.safe_dump(data), "utf-8")


def test_the_merge_order_is_nemo_gyms(tmp_path: Path) -> None:
    write_tree(tmp_path)
    theirs = nemo_gym_merge(["main.yaml", "other.yaml"], tmp_path)
    merged = merge_files(
        [tmp_path / "main.yaml", tmp_path / "other.yaml"], cwd=tmp_path, environ={}
    )
    ours = OmegaConf.to_container(merged)
    assert isinstance(ours, dict)
    assert {k: ours.get(k) for k in KEYS} == {k: theirs.get(k) for k in KEYS}
    # what the tree says, to be sure the comparison is not vacuous
    assert (ours["by_main"], ours["siblings"], ours["top_level"]) == ("main", "b", "other")


def test_a_missing_entry_is_one_line_naming_the_file_that_lists_it(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("config_paths: [nowhere/x.yaml]\nr: {a: {b: {}}}\n")
    with pytest.raises(ConfigError) as caught:
        load_any_config([tmp_path / "main.yaml"], environ={}, cwd=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'main.yaml'}: config_paths entry 'nowhere/x.yaml'")


def test_entries_are_found_under_nemo_gym_extra_roots_first(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    (extra / "conf").mkdir(parents=True)
    (tmp_path / "conf").mkdir()
    (extra / "conf" / "x.yaml").write_text("value: extra\n")
    (tmp_path / "conf" / "x.yaml").write_text("value: cwd\n")
    (tmp_path / "main.yaml").write_text("config_paths: [conf/x.yaml]\n")
    environ = {"NEMO_GYM_EXTRA_ROOTS": str(extra)}
    merged = merge_files([tmp_path / "main.yaml"], cwd=tmp_path, environ=environ)
    assert merged["value"] == "extra"
    assert merge_files([tmp_path / "main.yaml"], cwd=tmp_path, environ={})["value"] == "cwd"


def test_config_paths_must_be_a_list_of_paths(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("config_paths: conf/x.yaml\n")
    with pytest.raises(ConfigError, match="config_paths must be a list of paths"):
        merge_files([tmp_path / "main.yaml"], cwd=tmp_path, environ={})


@pytest.mark.parametrize(
    ("option", "files"),
    [
        ("a.yaml,b.yaml", ["a.yaml", "b.yaml"]),
        ("+config_paths=[a.yaml, b.yaml]", ["a.yaml", "b.yaml"]),
        ("config_paths=[a.yaml]", ["a.yaml"]),
    ],
)
def test_the_config_option_takes_ng_runs_spelling(option: str, files: list[str]) -> None:
    assert split_config_option(option) == files
