"""A trainer's view of one rollout: the whole multi-turn trajectory as one token sequence.

Policy-gradient losses train on the token ids the policy generated, never on re-tokenised text.
NeMo Gym (0.7.0, ``responses_converter.postprocess_assistant_message_dict``) puts three fields
on the LAST output item each model turn produced (its final ``function_call``, or its
``message``): ``prompt_token_ids`` (the whole prompt of that turn), ``generation_token_ids`` and
``generation_log_probs``; they travel unchanged into the output row's ``response.output``.

``token_trajectory`` turns such a row into what a loss needs::

    tokens     = prompt_0 + gen_0 + (prompt_1 - prompt_0 - gen_0) + gen_1 + ...
    loss_mask  =   0...0  + 1..1  +              0...0            + 1..1 + ...
    log_probs  =  0.0...  + lp_0  +              0.0...           + lp_1 + ...

The tokens between two generations (tool outputs, the chat template's turn markers) are the
extension of the next prompt beyond everything so far, so every turn's prompt must begin with
the previous turn's prompt followed by its generation (prefix-consistent). A row without token
ids, with partial or mismatched fields, or with a turn that re-renders the history differently,
is refused with a ``TrajectoryError`` naming the rollout and the item: training on it would be
silently wrong.

Pure Python, no dependency (lists, not tensors): a torch trainer wraps the lists itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gymstream.errors import TrajectoryError
from gymstream.nemo_gym.outputs.output_row import AGENT_REF, ROLLOUT_INDEX, TASK_INDEX
from gymstream.nemo_gym.outputs.token_ids import (
    GENERATION_LOG_PROBS,
    GENERATION_TOKEN_IDS,
    PROMPT_TOKEN_IDS,
    TOKEN_FIELDS,
)

if TYPE_CHECKING:
    from gymstream.trainer.grouping import Group

__all__ = [
    "GENERATION_LOG_PROBS",
    "GENERATION_TOKEN_IDS",
    "PROMPT_TOKEN_IDS",
    "TokenTrajectory",
    "group_trajectories",
    "token_trajectory",
]

# NeMo Gym's names (openai_utils.TokenIDLogProbMixin), on an item of ``response.output``: named
# once, in gymstream.nemo_gym.outputs.token_ids (re-exported here for trainers).


@dataclass(frozen=True, slots=True)
class TokenTrajectory:
    """One rollout as a loss sees it; every per-token list has ``len(token_ids)`` entries.

    ``loss_mask`` is 1 on tokens the policy generated, 0 elsewhere (prompt, tool outputs,
    template tokens between turns). ``log_probs`` holds the policy's log-probability of each
    generated token and 0.0 where the mask is 0. ``turn_spans`` are the ``[start, end)`` slices
    of each turn's generation; ``policy_versions`` the policy version of each turn (None when
    unknown); ``prompt_length`` the length of the first prompt.
    """

    token_ids: list[int]
    loss_mask: list[int]
    log_probs: list[float]
    turn_spans: list[tuple[int, int]]
    policy_versions: list[int | None]
    prompt_length: int

    @property
    def turns(self) -> int:
        return len(self.turn_spans)

    @property
    def generated_tokens(self) -> int:
        return sum(self.loss_mask)


def token_trajectory(
    row: Mapping[str, Any],
    *,
    policy_version: int | None = None,
    turn_versions: Sequence[int | None] | None = None,
) -> TokenTrajectory:
    """The token trajectory of one NeMo Gym output row; ``TrajectoryError`` if it has none.

    Each turn's policy version is ``turn_versions[i]`` when given (one per turn), else
    ``policy_version`` (gymstream's workers stamp a rollout with the version live when it
    started: ``ResultMessage.policy_version``).
    """
    where = _rollout_name(row)
    turns = _turns(row, where)
    if turn_versions is not None and len(turn_versions) != len(turns):
        raise TrajectoryError(
            f"{where}: {len(turn_versions)} turn versions given for {len(turns)} turns"
        )
    tokens: list[int] = []
    mask: list[int] = []
    log_probs: list[float] = []
    spans: list[tuple[int, int]] = []
    for number, (item_index, prompt, generation, probs) in enumerate(turns):
        if prompt[: len(tokens)] != tokens:
            raise TrajectoryError(
                f"{where}: turn {number} (response.output[{item_index}]): its prompt_token_ids "
                f"do not begin with the previous turns' prompt and generation "
                f"({_first_difference(prompt, tokens)}): the chat template re-rendered the "
                "history, so this rollout has no single token sequence to train on"
            )
        context = prompt[len(tokens) :]
        tokens += context
        mask += [0] * len(context)
        log_probs += [0.0] * len(context)
        start = len(tokens)
        tokens += generation
        mask += [1] * len(generation)
        log_probs += probs
        spans.append((start, len(tokens)))
    versions = list(turn_versions) if turn_versions is not None else [policy_version] * len(spans)
    return TokenTrajectory(
        token_ids=tokens,
        loss_mask=mask,
        log_probs=log_probs,
        turn_spans=spans,
        policy_versions=versions,
        prompt_length=len(turns[0][1]),
    )


def group_trajectories(group: Group) -> list[TokenTrajectory]:
    """The trajectory of every rollout of a delivered group, in rollout order."""
    return [
        token_trajectory(row, policy_version=result.policy_version)
        for row, result in zip(group.rows(), group.rollouts, strict=True)
    ]


_Turn = tuple[int, list[int], list[int], list[float]]


def _turns(row: Mapping[str, Any], where: str) -> list[_Turn]:
    """``(item index, prompt ids, generation ids, log-probs)`` of each turn, checked."""
    response = row.get("response")
    output = response.get("output") if isinstance(response, Mapping) else None
    if not isinstance(output, list):
        raise TrajectoryError(f"{where}: the row has no response.output list")
    turns: list[_Turn] = []
    for index, item in enumerate(output):
        if not isinstance(item, Mapping):
            continue
        present = [name for name in TOKEN_FIELDS if name in item]
        if not present:
            continue
        if len(present) < len(TOKEN_FIELDS):
            missing = ", ".join(name for name in TOKEN_FIELDS if name not in item)
            raise TrajectoryError(f"{where}: response.output[{index}] lacks {missing}")
        field = f"{where}: response.output[{index}]"
        prompt = _ints(item[PROMPT_TOKEN_IDS], f"{field}.{PROMPT_TOKEN_IDS}")
        generation = _ints(item[GENERATION_TOKEN_IDS], f"{field}.{GENERATION_TOKEN_IDS}")
        probs = _floats(item[GENERATION_LOG_PROBS], f"{field}.{GENERATION_LOG_PROBS}")
        if len(probs) != len(generation):
            raise TrajectoryError(
                f"{field}: {len(generation)} generation_token_ids but {len(probs)} "
                "generation_log_probs"
            )
        turns.append((index, prompt, generation, probs))
    if not turns:
        raise TrajectoryError(
            f"{where}: no output item carries prompt_token_ids, generation_token_ids and "
            "generation_log_probs: ask the model for them (return_token_id_information: true)"
        )
    return turns


def _ints(value: object, field: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise TrajectoryError(f"{field}: expected a list of integers")
    return value


def _floats(value: object, field: str) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise TrajectoryError(f"{field}: expected a list of numbers")
    return [float(v) for v in value]


def _first_difference(prompt: list[int], before: list[int]) -> str:
    if len(prompt) < len(before):
        return f"it has {len(prompt)} tokens, fewer than the {len(before)} before it"
    at = next(i for i, (a, b) in enumerate(zip(prompt, before, strict=False)) if a != b)
    return f"token {at} is {prompt[at]}, not {before[at]}"


def _rollout_name(row: Mapping[str, Any]) -> str:
    """``rollout <agent>/<task>/<rollout>`` from the row's stamps, as far as it has them."""
    ref = row.get(AGENT_REF)
    agent = ref.get("name") if isinstance(ref, Mapping) else None
    parts = [agent, row.get(TASK_INDEX), row.get(ROLLOUT_INDEX)]
    return "rollout " + "/".join("?" if p is None else str(p) for p in parts)
