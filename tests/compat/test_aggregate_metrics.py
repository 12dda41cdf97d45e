"""``<stem>_aggregate_metrics.json`` against NeMo Gym 0.7.0's own aggregation, for the same rows.

The rows: the multi-step example set with two task fields NeMo Gym's verifier does not declare
(``seed``, ``level_id``, as grl_sokoban's rows carry), two rollouts each, run by NeMo Gym's real
``simple_agent`` ``/run``. NeMo Gym's row is that answer with its collector's stamps; gymstream's
row is what its remote agent and output-row builder make of the same answer (task fields kept).

- NeMo Gym's file: ``compute_aggregate_metrics`` run in NeMo Gym's own venv on NeMo Gym's rows,
  stripped as its collector strips them; gymstream's: ``server_metrics`` over gymstream's output
  file, through the real resources server's ``/aggregate_metrics``. Equal key for key.
- gymstream's own summary (native agents): per field the same mean/max/min/median/std as NeMo
  Gym's agent metrics, over exactly NeMo Gym's fields, and per task NeMo Gym's reward stats.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest
from compat_rows import example_rows
from nemo_gym_helpers import MS_AGENT, MS_RESOURCES, NemoGymServers, nemo_gym_python

from gymstream.nemo_gym.config.agents import AgentConfig, GymConfig, ServerRef
from gymstream.nemo_gym.outputs.aggregate import aggregate_metrics
from gymstream.nemo_gym.outputs.output_row import EnvironmentServer, output_row
from gymstream.nemo_gym.servers.agent import RemoteAgent
from gymstream.nemo_gym.servers.aggregate_metrics import server_metrics
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.settings import RetrySettings, ServerSettings
from gymstream.wire.messages import TaskMessage

ENVIRONMENT_SERVER = EnvironmentServer("example_multi_step_environment_server", "legacy_agent")
REPEATS = 2
STATS = ("mean", "max", "min", "median", "std")

# NeMo Gym's collector: what it strips before /aggregate_metrics (rollout_collection.py)
_COMPUTE = """
import json, sys, warnings
warnings.simplefilter("ignore")
from nemo_gym.reward_profile import compute_aggregate_metrics
rows = json.load(sys.stdin)
heavy = ("response", "responses_create_params", "ng_agent_observations", "ng_model_call_capture",
         "ng_trajectory")
stripped = []
for row in rows:
    entry = {k: v for k, v in row.items() if k not in heavy}
    response = row.get("response") or {}
    kept = {k: response[k] for k in ("usage", "incomplete_details") if response.get(k) is not None}
    if kept:
        entry["response"] = kept
    stripped.append(entry)
print(compute_aggregate_metrics(stripped).model_dump_json())
"""


def _nemo_gyms_aggregation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = subprocess.run(
        [str(nemo_gym_python()), "-c", _COMPUTE],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _config(servers: NemoGymServers) -> GymConfig:
    resources = ServerRef(
        instance=MS_RESOURCES, server_type="resources_servers", url=servers.url(MS_RESOURCES)
    )
    fronting = ServerRef(
        instance=ENVIRONMENT_SERVER.instance,
        server_type="environment_servers",
        implementation=ENVIRONMENT_SERVER.implementation,
    )
    agent = AgentConfig(
        environment=MS_RESOURCES, resources_server=resources, environment_server=fronting
    )
    return GymConfig(agents={MS_AGENT: agent})


@pytest.fixture(scope="module")
def both_rows(
    nemo_gym_examples: NemoGymServers,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(NeMo Gym's rows, gymstream's rows) of the same rollouts."""
    return asyncio.run(_run_both(nemo_gym_examples))


async def _run_both(
    nemo_gym_examples: NemoGymServers,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    settings, retry = ServerSettings(), RetrySettings(max_attempts=1)
    client = ServerClient(MS_AGENT, nemo_gym_examples.url(MS_AGENT), settings=settings, retry=retry)
    agent = RemoteAgent(MS_AGENT, client)
    theirs: list[dict[str, Any]] = []
    ours: list[dict[str, Any]] = []
    try:
        for task, example in enumerate(example_rows("example_multi_step")):
            row = {**example, "seed": 76000 + 7 * task, "level_id": task % 3}
            row["agent_ref"] = {"type": "responses_api_agents", "name": MS_AGENT}
            for rollout in range(REPEATS):
                result = await agent.run(row)
                answer = json.loads((await client.post("/run", msgspec.json.encode(row))).text)
                theirs.append(
                    {
                        **answer,
                        "_ng_task_index": task,
                        "_ng_rollout_index": rollout,
                        "agent_ref": row["agent_ref"],
                        "_ng_environment_server": ENVIRONMENT_SERVER.instance,
                        "_ng_result_type": ENVIRONMENT_SERVER.implementation,
                    }
                )
                message = TaskMessage(
                    run_id="r",
                    rollout_id=f"r/{MS_AGENT}/{task}/{rollout}",
                    agent=MS_AGENT,
                    task_index=task,
                    rollout_index=rollout,
                    row=row,
                )
                ours.append(output_row(result.verify_result, message, ENVIRONMENT_SERVER))
    finally:
        await client.aclose()
    return theirs, ours


def _write(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_rows_carry_nemo_gyms_stamps_and_more_task_fields(
    both_rows: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    theirs, ours = both_rows
    for their_row, our_row in zip(theirs, ours, strict=True):
        assert "seed" not in their_row  # NeMo Gym's verifier does not declare it
        assert our_row["seed"] == 76000 + 7 * our_row["_ng_task_index"]  # gymstream keeps it
        assert "seed" in our_row["_gs_task_fields"]
        for key in ("_ng_environment_server", "_ng_result_type", "_ng_task_index", "agent_ref"):
            assert our_row[key] == their_row[key], key
        assert set(their_row) <= set(our_row)
    assert {row["reward"] for row in theirs} == {row["reward"] for row in ours}


async def test_the_metrics_file_is_nemo_gyms_key_for_key(
    both_rows: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    nemo_gym_examples: NemoGymServers,
    tmp_path: Path,
) -> None:
    theirs, ours = both_rows
    expected = _nemo_gyms_aggregation(theirs)
    output = _write(ours, tmp_path / "out.jsonl")
    entries = await server_metrics(
        _config(nemo_gym_examples), output, settings=ServerSettings(), retry=RetrySettings()
    )
    assert entries is not None
    (entry,) = entries
    assert entry["agent_ref"] == {"name": MS_AGENT}
    assert entry["_ng_environment_server"] == ENVIRONMENT_SERVER.instance  # NeMo Gym's meaning
    for key in ("agent_metrics", "key_metrics", "group_level_metrics", "repeat_level_metrics"):
        assert entry[key] == expected[key], key
    assert "mean/seed" not in entry["key_metrics"]
    assert "mean/reward" in entry["key_metrics"]


def test_gymstreams_own_summary_measures_nemo_gyms_fields(
    both_rows: tuple[list[dict[str, Any]], list[dict[str, Any]]], tmp_path: Path
) -> None:
    theirs, ours = both_rows
    expected = _nemo_gyms_aggregation(theirs)
    summary = aggregate_metrics(_write(ours, tmp_path / "out.jsonl"))[MS_AGENT]
    their_fields = {k.split("/", 1)[1] for k in expected["key_metrics"] if k.startswith("mean/")}
    assert set(summary["metrics"]) == their_fields
    for field, stats in summary["metrics"].items():
        for stat in STATS:
            assert stats[stat] == pytest.approx(expected["agent_metrics"][f"{stat}/{field}"]), (
                field,
                stat,
            )
    for group in expected["group_level_metrics"]:
        task = summary["tasks"][str(group["_ng_task_index"])]
        assert task["rollouts"] == group["num_rollouts"] == REPEATS
        for stat in STATS:
            assert task[stat] == pytest.approx(group[f"{stat}/reward"]), stat
