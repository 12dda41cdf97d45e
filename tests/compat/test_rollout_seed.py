"""``--num-repeats-add-seed``: the rows gymstream plans carry NeMo Gym 0.7.0's per-rollout seed.

NeMo Gym's collector (``RolloutCollectionHelper._preprocess_raw_rows`` with
``num_repeats_add_seed``, run in its venv) and gymstream's ``plan_rollouts`` expand the same
rows three times; every rollout's ``responses_create_params`` must be the same, byte for byte
in ``metadata.extra_body`` (seed = the rollout index, merged into what the row had).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fixtures.nemo_gym_rows import example_rows
from fixtures.nemo_gym_servers import nemo_gym_python

from gymstream.errors import RowError
from gymstream.produce.plan import (
    JsonlFile,
    ProduceOptions,
    ProduceReport,
    plan_rollouts,
    valid_rows,
)

AGENT = "example_single_tool_call_simple_agent"
NEMO_GYM_SCRIPT = """
import json, sys
from nemo_gym.rollout_collection import RolloutCollectionConfig, RolloutCollectionHelper
rows = [json.loads(line) for line in open(sys.argv[1])]
config = RolloutCollectionConfig(
    input_jsonl_fpath=sys.argv[1], output_jsonl_fpath=sys.argv[2], num_repeats=3,
    num_repeats_add_seed=True,
)
out = RolloutCollectionHelper._preprocess_raw_rows(
    [(i, json.dumps(r), r) for i, r in enumerate(rows)], config
)
keys = ("_ng_task_index", "_ng_rollout_index", "responses_create_params")
print(json.dumps([{k: r[k] for k in keys} for r in out]))
"""


def _input(tmp_path: Path) -> Path:
    rows = example_rows("example_single_tool_call")[:2]
    rows[1]["responses_create_params"]["metadata"] = {"extra_body": '{"top_k": 3}', "x": "y"}
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({**r, "agent_ref": {"name": AGENT}}) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _ours(path: Path) -> dict[tuple[int, int], Any]:
    options = ProduceOptions(
        input_path=path,
        run_id="r",
        known_agents=frozenset({AGENT}),
        num_repeats=3,
        num_repeats_add_seed=True,
    )
    report = ProduceReport("r")
    rows = valid_rows(options, report, JsonlFile(None))
    return {
        (p.task_index, p.rollout_index): p.row["responses_create_params"]
        for p in plan_rollouts(rows, options, report)
    }


def test_every_rollouts_request_is_nemo_gyms(tmp_path: Path) -> None:
    path = _input(tmp_path)
    done = subprocess.run(
        [str(nemo_gym_python()), "-c", NEMO_GYM_SCRIPT, str(path), str(tmp_path / "o.jsonl")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = {
        (r["_ng_task_index"], r["_ng_rollout_index"]): r["responses_create_params"]
        for r in json.loads(done.stdout.strip().splitlines()[-1])
    }
    ours = _ours(path)
    assert ours == theirs
    assert ours[(1, 2)]["metadata"] == {"extra_body": '{"top_k": 3, "seed": 2}', "x": "y"}
    assert len(ours) == 6


def test_extra_body_that_is_not_a_json_object_names_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    row = {"responses_create_params": {"input": "hi", "metadata": {"extra_body": "[1]"}}}
    path.write_text(json.dumps({**row, "agent_ref": {"name": AGENT}}) + "\n")
    with pytest.raises(RowError) as caught:
        _ours(path)
    assert str(caught.value).startswith(
        f"{path}:1: responses_create_params.metadata.extra_body: must be a JSON object"
    )
