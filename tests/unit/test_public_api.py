"""gymstream's public API: a short sorted __all__, every name importable, nothing eager."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gymstream


def test_all_is_sorted_and_unique() -> None:
    names = list(gymstream.__all__)
    assert names == sorted(names, key=lambda n: (not n[0].isupper(), n))
    assert len(set(names)) == len(names)


def test_every_public_name_resolves_to_its_home_module() -> None:
    for name in gymstream.__all__:
        value = getattr(gymstream, name)
        home = gymstream._HOME[name]
        assert getattr(sys.modules[home], name) is value, name
    assert set(gymstream._HOME) == set(gymstream.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        gymstream.no_such_name  # noqa: B018


def test_importing_gymstream_imports_no_stage() -> None:
    """``import gymstream`` is cheap: no Kafka client, no trainer, no worker until used."""
    code = (
        "import sys, gymstream; "
        "print(sorted(m for m in sys.modules if m.startswith(('gymstream.', 'aiokafka'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_example_trainer_needs_only_the_public_api() -> None:
    """examples/online_trainer.py imports gymstream's public names, not its modules."""
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "examples" / "online_trainer.py").read_text()
    imports = [
        line
        for line in source.splitlines()
        if line.startswith(("from gymstream", "import gymstream"))
    ]
    assert imports, "the example imports nothing from gymstream"
    assert all(line.startswith("from gymstream import ") for line in imports), imports
