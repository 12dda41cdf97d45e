"""A real TRL training run with gymstream as its rollout backend: ``examples/trl_grpo.py``.

TRL 1.16.0's ``GRPOTrainer.train()`` runs 3 optimizer steps on CPU (in the venv of
``scripts/trl-venv``) on a tiny random ``LlamaForCausalLM`` with a locally built tokenizer and chat
template: nothing is downloaded. Each step's 8 prompts (2 NeMo Gym rows of the two example
environments x 4 generations) are one gymstream run through this broker: the workers call a
vLLM-shaped Chat Completions endpoint over that same model (real generation, token ids and
log-probs), and the trainer trains on the per-turn token ids.

Checked: every step trained on gymstream's rows (the rewards TRL logged are the rows' rewards,
as the results topic holds them), each run has every rollout once (no duplicate, none missing,
no failure), each rollout is stamped with the step's policy version, the weights changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gymstream.kafka.topics import load_layout
from gymstream.settings import KafkaSettings
from gymstream.trainer.options import StreamOptions
from gymstream.trainer.stream import GroupStream

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]  # a first venv build takes minutes

ROOT = Path(__file__).resolve().parents[2]
STEPS, PROMPTS, GENERATIONS = 3, 2, 4


def _trl_python() -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "trl-venv")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/trl-venv failed:\n{done.stderr[-3000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


def _train(env: dict[str, str], report: Path, output: Path) -> subprocess.CompletedProcess[str]:
    """examples/trl_grpo.py in the TRL venv, to its end (the test's timeout bounds it)."""
    return subprocess.run(
        [
            _trl_python(),
            str(ROOT / "examples" / "trl_grpo.py"),
            *("--max-steps", str(STEPS), "--prompts-per-step", str(PROMPTS)),
            *("--num-generations", str(GENERATIONS), "--report", str(report)),
            *("--output-dir", str(output)),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


async def _run_results(kafka: KafkaSettings, prefix: str, run_id: str) -> tuple[list[Any], int]:
    """The results of one run as the results topic holds them, and the duplicates seen."""
    options = StreamOptions(
        run_id=run_id,
        unit="rollout",
        incomplete="deliver",
        deliver_failed=True,
        consumer="check",
        from_beginning=True,
        poll_ms=50,
    )
    units = []
    async with GroupStream(kafka, load_layout(prefix=prefix), options) as stream:
        while (unit := await stream.next_group(timeout_s=30)) is not None:
            units.append(unit)
        return units, stream.stats.duplicates


async def test_grpo_trainer_trains_on_gymstreams_rollouts(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    report_path = tmp_path / "report.json"
    env = {
        **os.environ,
        "GYMSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "GYMSTREAM_TOPIC_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
        "TRL_EXPERIMENTAL_SILENCE": "1",
        "HF_HUB_OFFLINE": "1",  # nothing may come from a model hub
    }
    done = await asyncio.to_thread(_train, env, report_path, tmp_path / "out")
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(report_path.read_text())
    assert report["global_step"] == STEPS
    assert report["changed"]
    assert len(report["changed"]) == report["parameters"]  # every weight trained
    printed = [line for line in done.stdout.splitlines() if "mean env reward" in line]
    assert len(printed) == STEPS
    steps, logged, run_ids = report["steps"], report["logged"], report["run_ids"]
    assert len(steps) == len(logged) == len(run_ids) == STEPS
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    for number, (step, log, run_id) in enumerate(zip(steps, logged, run_ids, strict=True)):
        assert step["completions"] == PROMPTS * GENERATIONS
        assert sorted(Counter(step["prompts"]).values()) == [GENERATIONS] * PROMPTS
        rewards = step["env_reward"]
        assert log["reward"] == pytest.approx(sum(rewards) / len(rewards))  # TRL logged these
        units, duplicates = await _run_results(kafka, prefix, run_id)
        assert duplicates == 0
        assert not [u for u in units if u.failed]
        keys = [(u.agent, u.task_index, u.rollout_index) for u in units]
        assert len(keys) == len(set(keys)) == PROMPTS * GENERATIONS  # each rollout once
        assert sorted(u.rollouts[0].reward for u in units) == sorted(rewards)
        assert {u.rollouts[0].policy_version for u in units} == {number}  # the step's version
