"""The agent plan: resolved once, serialized to a child process and read back the same."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gymstream.errors import ConfigError, EnvironmentNotFoundError
from gymstream.kafka.topics import load_layout
from gymstream.nemo_gym.config.agents import AgentConfig, GymConfig, ModelEndpoint
from gymstream.rollout.plan import AgentPlan, AgentPlans, ModelOptions, plan_agent, read_plan
from gymstream.settings import KafkaSettings, ModelSettings, VllmOptions
from gymstream.worker.launch import worker_argv

AGENT = "a"
CONFIG = GymConfig(
    agents={AGENT: AgentConfig(environment="example_single_tool_call", concurrency=7)},
    models={
        "policy_model": ModelEndpoint(
            base_url="http://yaml:8000/v1",
            name="from-yaml",
            api_key="sk-from-yaml",
            base_urls=("http://yaml:8000/v1", "http://yaml:8001/v1"),
            vllm=VllmOptions(extra_body={"top_k": 4}),
        )
    },
)
CHILD = (
    "import sys\n"
    "from gymstream.rollout.plan import read_plan\n"
    "sys.stdout.buffer.write(read_plan(sys.stdin.fileno()).to_json())\n"
)


def test_the_plan_resolves_the_model_and_the_concurrency_once() -> None:
    plan = plan_agent(CONFIG, AGENT, ModelOptions(name="from-cli"), ModelSettings())
    assert (plan.model.name, plan.model.base_url) == ("from-cli", "http://yaml:8000/v1")
    assert plan.concurrency == 7  # the agent's
    assert plan_agent(CONFIG, AGENT, ModelOptions(), ModelSettings(), 3).concurrency == 3
    with pytest.raises(EnvironmentNotFoundError, match="unknown agent 'nope'"):
        AgentPlans(CONFIG, ModelOptions(), ModelSettings()).plan("nope")


def test_a_bad_model_option_is_a_config_error_naming_the_agent() -> None:
    with pytest.raises(ConfigError, match="model for agent 'a': api"):
        plan_agent(CONFIG, AGENT, ModelOptions(api="completions"), ModelSettings())


def test_the_plan_survives_a_child_process_whole_with_its_api_key() -> None:
    options = ModelOptions(return_token_id_information=True)
    plan = plan_agent(CONFIG, AGENT, options, ModelSettings(), 5)
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=plan.to_json() + b"\n",
        capture_output=True,
        check=True,
    )
    back = AgentPlan.from_json(child.stdout)
    assert back == plan
    assert back.model.api_key is not None
    assert back.model.api_key.get_secret_value() == "sk-from-yaml"
    assert (back.model.return_token_id_information, back.model.vllm) == (True, plan.model.vllm)
    assert b"sk-from-yaml" not in repr(plan).encode()  # never printed


def test_read_plan_stops_at_the_newline_and_names_a_short_pipe() -> None:
    plan = plan_agent(CONFIG, AGENT, ModelOptions(), ModelSettings())
    read, write = os.pipe()
    os.write(write, plan.to_json() + b"\nmore")
    assert read_plan(read) == plan
    assert os.read(read, 4) == b"more"  # nothing after the line was consumed
    os.close(write)
    with pytest.raises(ConfigError, match="ended before a whole agent plan"):
        read_plan(read)
    os.close(read)


def test_a_line_that_is_not_a_plan_is_one_config_error() -> None:
    with pytest.raises(ConfigError, match="agent plan: "):
        AgentPlan.from_json(b'{"name": "a"}')


def test_a_worker_process_gets_its_plan_on_stdin_not_as_flags() -> None:
    plan = plan_agent(CONFIG, AGENT, ModelOptions(name="m"), ModelSettings())
    argv = worker_argv(plan, KafkaSettings(), load_layout(None, "p"), metrics_port=9100)
    assert "--plan-stdin" in argv
    assert argv[argv.index("--agent") + 1] == AGENT
    assert not [a for a in argv if a.startswith(("--model", "--config", "--concurrency"))]
    assert argv[argv.index("--metrics-port") + 1] == "9100"
