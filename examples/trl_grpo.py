"""TRL's GRPOTrainer with gymstream as its rollout backend, on the two example environments.

On CPU, with nothing downloaded and no service but Kafka (``GYMSTREAM_KAFKA_BOOTSTRAP``)::

    scripts/trl-venv                                    # once: trl, torch, transformers
    PYTHONPATH=. $(scripts/trl-venv) examples/trl_grpo.py --max-steps 3

trains a tiny random ``LlamaForCausalLM`` (``examples/trl_tiny.py``), served to gymstream's
workers by a vLLM-shaped Chat Completions endpoint over that same model, and prints each step's
mean environment reward. On a GPU machine, with TRL's vLLM server (``trl vllm-serve --model
NAME``)::

    PYTHONPATH=. python examples/trl_grpo.py --model NAME --vllm-server http://HOST:8000

Rollouts: each step's prompts (NeMo Gym rows, repeated ``num_generations`` times by TRL) are one
gymstream run (``gymstream.integrations.trl.rollout_func``): published to Kafka, run by workers
(this process's own unless ``gymstream worker`` processes serve the agents), read back with
per-turn token ids and log-probs. ``--report FILE`` writes what each step trained on (the test
reads it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from gymstream.integrations.trl import env_reward, rollout_func  # noqa: E402
from gymstream.kafka.topics import load_layout  # noqa: E402
from gymstream.nemo_gym.config.agents import load_config  # noqa: E402
from gymstream.settings import (  # noqa: E402
    KafkaSettings,
    ModelSettings,
    RetrySettings,
    RolloutSettings,
    TopicSettings,
    WorkerSettings,
)

AGENTS = {
    "example_single_tool_call": "example_single_tool_call_simple_agent",
    "example_multi_step": "example_multi_step_simple_agent",
}


def example_rows(per_environment: int) -> list[dict[str, Any]]:
    """The first rows of each example environment's dataset, routed by ``agent_ref``."""
    rows = []
    for environment, agent in AGENTS.items():
        path = ROOT / "environments" / environment / "data" / "example.jsonl"
        lines = [x for x in path.read_text("utf-8").splitlines() if x.strip()][:per_environment]
        for line in lines:
            rows.append({**json.loads(line), "agent_ref": {"name": agent}})
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--model", help="a model name (default: the tiny local model, CPU)")
    parser.add_argument("--vllm-server", help="TRL's vLLM server URL (with --model)")
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=6)
    parser.add_argument("--max-turns", type=int, default=3, help="model turns per rollout")
    parser.add_argument("--learning-rate", type=float, default=5e-2)
    parser.add_argument("--report", type=Path, help="write what each step trained on here")
    parser.add_argument("--output-dir", type=Path, default=Path("trl_grpo_output"))
    return parser.parse_args()


def trainer_args(args: argparse.Namespace) -> GRPOConfig:
    on_gpu = args.model is not None
    return GRPOConfig(
        output_dir=str(args.output_dir),
        use_cpu=not on_gpu,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=256 if on_gpu else 128,
        learning_rate=args.learning_rate,
        beta=0.0,
        temperature=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        shuffle_dataset=False,
        use_vllm=on_gpu,
        vllm_mode="server",
        vllm_server_base_url=args.vllm_server if on_gpu else None,
    )


def main() -> int:
    args = parse_args()
    if (args.model is None) != (args.vllm_server is None):
        print("error: --model and --vllm-server go together", file=sys.stderr)
        return 2
    server = None
    if args.model is None:
        from trl_tiny import ChatServer, tiny_model

        model: Any
        model, tokenizer = tiny_model()
        server = ChatServer(model, tokenizer, max_new_tokens=args.max_new_tokens)
        base_url, model_name = server.url, "tiny"
    else:
        from transformers import AutoTokenizer

        model, tokenizer = args.model, AutoTokenizer.from_pretrained(args.model)
        base_url, model_name = args.vllm_server.rstrip("/") + "/v1", args.model
    settings = RolloutSettings(
        model=ModelSettings(
            base_url=base_url,
            name=model_name,
            api="chat_completions",
            return_token_id_information=True,
        ),
        retry=RetrySettings(),
        worker=WorkerSettings(commit_interval_s=0.1),
    )
    layout = load_layout(prefix=TopicSettings().prefix)
    steps: list[dict[str, Any]] = []
    config = load_config()
    turns = {"max_steps": args.max_turns}
    agents = {name: a.model_copy(update=turns) for name, a in config.agents.items()}
    config = config.model_copy(update={"agents": agents})
    collect = rollout_func(config, kafka=KafkaSettings(), layout=layout, settings=settings)

    def recorded_rollouts(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        batch = collect(prompts, trainer)
        rows = [json.loads(p) for p in prompts]
        steps.append(
            {
                "step": trainer.state.global_step,
                "prompts": [r["agent_ref"]["name"] + ":" + json.dumps(r) for r in rows],
                "completions": len(batch["completion_ids"]),
                "env_reward": batch["env_reward"],
                "env_tokens": sum(m.count(0) for m in batch["env_mask"]),
            }
        )
        return batch

    dataset = Dataset.from_list([{"prompt": json.dumps(r)} for r in example_rows(2)])
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=env_reward,
        train_dataset=dataset,
        rollout_func=recorded_rollouts,
        args=trainer_args(args),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    try:
        trainer.train()
    finally:
        collect.close()  # type: ignore[attr-defined]
        if server is not None:
            server.stop()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    logged = [h for h in trainer.state.log_history if "reward" in h]
    for entry, step in zip(logged, steps, strict=False):
        mean = sum(step["env_reward"]) / len(step["env_reward"])
        logged_mean = entry["reward"]
        print(f"step {entry.get('step')}: mean env reward {mean:.3f} (logged {logged_mean:.3f})")
    if args.report is not None:
        report = {
            "steps": steps,
            "logged": logged,
            "changed": changed,
            "run_ids": collect.run_ids,  # type: ignore[attr-defined]
            "parameters": len(before),
            "global_step": trainer.state.global_step,
        }
        args.report.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
