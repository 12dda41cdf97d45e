"""``RolloutCollectionHelper.preprocess_examples``: ours gives NeMo Gym 0.7.0's rows, key order too.

NeMo Gym's own ``preprocess_examples`` runs in its venv (a subprocess, no server) on the same
examples and options; the expanded rows must be equal, as JSON text (so in the same key order).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from fixtures.nemo_gym_servers import nemo_gym_python

from gymstream.integrations.nemo_gym import RolloutCollectionHelper

_THEIRS = """
import json, sys
from nemo_gym.rollout_collection import RolloutCollectionHelper
cases = json.loads(sys.stdin.read())
print(json.dumps([RolloutCollectionHelper().preprocess_examples(rows, **options)
                  for rows, options in cases]))
"""

_ROWS: list[dict[str, Any]] = [
    {"responses_create_params": {"input": "a"}, "agent_ref": {"name": "x", "type": "t"}},
    {"responses_create_params": {"input": "b"}, "agent_ref": {"name": "y"}},
    {"responses_create_params": {"input": "a"}, "agent_ref": {"name": "x", "type": "t"}},
    {"responses_create_params": {"input": "c", "metadata": {"k": "v"}}, "agent_ref": {"name": "x"}},
    {"responses_create_params": {"input": "d"}, "agent_ref": {"name": "y"}, "_ng_task_index": 7},
]
_CASES: list[tuple[list[dict[str, Any]], dict[str, Any]]] = [
    (_ROWS, {}),
    (_ROWS, {"num_repeats": 3}),
    (_ROWS, {"num_repeats": 2, "num_repeats_add_seed": True, "agent_map": {"y": "z"}}),
    (_ROWS, {"num_repeats": {"x": 2, "_default": 1}, "agent_map": {"_default": "w"}}),
    (_ROWS, {"num_repeats": {"x": 1, "y": 4}}),
]


def test_preprocess_examples_rows_equal_nemo_gyms() -> None:
    python = nemo_gym_python()
    done = subprocess.run(
        [str(python), "-c", _THEIRS],
        input=json.dumps(_CASES),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    helper = RolloutCollectionHelper()
    for (rows, options), expected in zip(_CASES, theirs, strict=True):
        ours = helper.preprocess_examples(rows, **options)
        assert json.dumps(ours) == json.dumps(expected), options
    assert json.dumps(_ROWS[0]) == json.dumps(_CASES[0][0][0])  # the caller's rows untouched


def test_fan_out_is_refused_not_ignored() -> None:
    with pytest.raises(Exception, match="fan_out"):
        RolloutCollectionHelper().preprocess_examples(_ROWS, fan_out={"x": ["a", "b"]})
