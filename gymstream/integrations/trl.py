"""TRL: a ``GRPOTrainer`` ``rollout_func`` whose rollouts go through gymstream.

::

    from gymstream.integrations.trl import rollout_func

    trainer = GRPOTrainer(
        model=..., reward_funcs=env_reward, train_dataset=dataset,     # prompts: JSON NeMo Gym rows
        rollout_func=rollout_func(config), args=GRPOConfig(...),
    )

TRL (``rollout_func`` exists in TRL >= 0.24; tested with 1.16.0) calls ``f(prompts, trainer)``
with the batch's prompts already repeated ``num_generations`` times, and wants one completion per
prompt, in order. Each prompt is a NeMo Gym row (a JSON string, as in TRL's NeMo Gym example, or
a dict) that carries ``agent_ref``: several environments in one batch route by it. The rows are
run as one gymstream run (``client.RolloutClient``, policy version = the trainer's global step),
and the results become what TRL's NeMo Gym example (``examples/scripts/nemo_gym/
grpo_nemo_gym.py``) builds from the per-turn ``prompt_token_ids`` / ``generation_token_ids`` /
``generation_log_probs`` (``rollout_batch``):

- ``prompt_ids``: the first turn's prompt;
- ``completion_ids``: every turn's generation, with the tokens between turns (tool outputs, the
  chat template's markers: the next prompt beyond everything so far) in between;
- ``env_mask``: 1 on generated tokens, 0 on those in-between tokens;
- ``logprobs``: each generated token's log-probability, 0.0 on in-between tokens;
- ``env_reward``: the rollout's reward (pass it on with a reward function such as
  ``env_reward``).

A row whose turns are not prefix-consistent (a turn's prompt does not begin with the previous
prompt and generation), or that has no token ids, is a ``TrajectoryError`` naming the row: never
silently wrong tokens. A failed rollout raises ``RolloutFailedError``.
"""

from __future__ import annotations

import atexit
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gymstream.client.run import new_run_id
from gymstream.client.sync import SyncRolloutClient
from gymstream.errors import TrajectoryError
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.outputs.output_row import PARAMS
from gymstream.trainer.tokens import token_trajectory

__all__ = ["RolloutFunc", "env_reward", "rollout_batch", "rollout_func", "rows_of"]

RolloutFunc = Callable[[list[Any], Any], dict[str, list[Any]]]

_NO_AHEAD = (
    "rollout_func(ahead={ahead}): TRL's GRPOTrainer gives rollout_func a batch's prompts only "
    "when it wants that batch's completions, and pairs them (reward functions, dataset columns, "
    "logs): collecting ahead would return completions of earlier prompts. Use ahead=0 here, or "
    "gymstream.client.AheadRuns in a trainer loop that submits its next batches itself "
    "(docs/trainer.md, 'Ahead mode')"
)


def env_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """A GRPOTrainer reward function: the environment's reward of each completion."""
    rewards = kwargs.get("env_reward")
    if rewards is None:
        raise ValueError("env_reward: the rollout_func gave no env_reward")
    return [float(r) for r in rewards]


def rows_of(prompts: Sequence[Any], trainer_args: Any = None) -> list[dict[str, Any]]:
    """The NeMo Gym rows of TRL's prompts (JSON strings or dicts), each a new dict; with the
    trainer's args, their sampling settings go into ``responses_create_params`` as TRL's
    example sets them (temperature, top_p, max_output_tokens = max_completion_length)."""
    rows = []
    for prompt in prompts:
        row = dict(json.loads(prompt) if isinstance(prompt, str | bytes) else prompt)
        if trainer_args is not None:
            params = dict(row.get(PARAMS) or {})
            params["temperature"] = trainer_args.temperature
            params["top_p"] = trainer_args.top_p
            if getattr(trainer_args, "max_completion_length", None) is not None:
                params["max_output_tokens"] = trainer_args.max_completion_length
            row[PARAMS] = params
        rows.append(row)
    return rows


def rollout_batch(results: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """TRL's rollout_func output for ``results`` (NeMo Gym ``/run`` results, in prompt order)."""
    batch: dict[str, list[Any]] = {
        "prompt_ids": [],
        "completion_ids": [],
        "env_mask": [],
        "logprobs": [],
        "env_reward": [],
    }
    for index, result in enumerate(results):
        try:
            trajectory = token_trajectory(result)
        except TrajectoryError as exc:
            raise TrajectoryError(f"row {index} of the batch: {exc}") from None
        start = trajectory.prompt_length
        batch["prompt_ids"].append(trajectory.token_ids[:start])
        batch["completion_ids"].append(trajectory.token_ids[start:])
        batch["env_mask"].append(trajectory.loss_mask[start:])
        batch["logprobs"].append(trajectory.log_probs[start:])
        batch["env_reward"].append(float(result["reward"]))
    return batch


def rollout_func(config: GymConfig, *, ahead: int = 0, **client_options: Any) -> RolloutFunc:
    """A GRPOTrainer ``rollout_func`` over a ``SyncRolloutClient(config, **client_options)``,
    started on the first call and closed at exit (or by ``f.close()``). Each call is one run
    (``f.run_ids`` lists them), with the trainer's global step as its policy version.

    ``ahead``: only 0 (request/response). TRL hands ``rollout_func`` a batch's prompts when it
    wants that batch's completions, so nothing can be collected ahead without returning
    completions of other prompts than those given (see ``_NO_AHEAD``); trainers that own their
    loop keep batches in flight with ``gymstream.client.AheadRuns``."""
    if ahead != 0:
        raise ValueError(_NO_AHEAD.format(ahead=ahead))
    holder: dict[str, SyncRolloutClient] = {}
    run_ids: list[str] = []  # one run per call, in order

    def client() -> SyncRolloutClient:
        if "client" not in holder:
            holder["client"] = SyncRolloutClient(config, **client_options).__enter__()
            atexit.register(close)
        return holder["client"]

    def close() -> None:
        started = holder.pop("client", None)
        if started is not None:
            started.__exit__(None, None, None)

    def rollout(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        rows = rows_of(prompts, getattr(trainer, "args", None))
        state = getattr(trainer, "state", None)
        version = getattr(state, "global_step", None)
        position = {id(row): index for index, row in enumerate(rows)}
        results: list[Mapping[str, Any]] = [{} for _ in rows]
        run_id = new_run_id("trl")
        run_ids.append(run_id)
        for row, result in client().run(rows, run_id=run_id, policy_version=version):
            results[position[id(row)]] = result
        return rollout_batch(results)

    rollout.close = close  # type: ignore[attr-defined]
    rollout.run_ids = run_ids  # type: ignore[attr-defined]
    return rollout
