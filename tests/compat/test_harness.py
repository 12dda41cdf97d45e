"""The harness itself: NeMo Gym 0.7.0's own servers run here and play gymstream's scripted model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from fixtures.nemo_gym_rows import example_rows
from fixtures.nemo_gym_servers import MS_AGENT, STC_AGENT, NemoGymServers


def test_simple_agent_runs_a_single_tool_call_row_through_the_scripted_model(
    nemo_gym_examples: NemoGymServers,
) -> None:
    row = example_rows("example_single_tool_call")[0]
    answer = httpx.post(f"{nemo_gym_examples.url(STC_AGENT)}/run", json=row, timeout=30).json()
    types = [item["type"] for item in answer["response"]["output"]]
    assert types == ["function_call", "function_call_output", "message"]
    assert answer["response"]["output"][0]["name"] == "get_weather"
    assert json.loads(answer["response"]["output"][1]["output"])["city"] == "San Francisco"
    assert answer["reward"] == 1.0


def test_simple_agent_runs_a_multi_step_row_with_the_five_metrics(
    nemo_gym_examples: NemoGymServers,
) -> None:
    row = example_rows("example_multi_step")[0]
    answer = httpx.post(f"{nemo_gym_examples.url(MS_AGENT)}/run", json=row, timeout=30).json()
    metrics = {"parsed_synonym_values", "accuracy", "set_overlap", "original_term_minefield_hit"}
    assert metrics | {"order_instruction_following_failure", "reward"} <= set(answer)
    assert answer["response"]["output"][-1]["type"] == "message"


def test_server_logs_are_kept_for_failures(nemo_gym_examples: NemoGymServers) -> None:
    log = Path(nemo_gym_examples.log_dir) / f"{STC_AGENT}.log"
    assert "Uvicorn running on" in log.read_text("utf-8")
