"""Token ids and log-probs on a trajectory's output items, where NeMo Gym 0.7.0 puts them.

With ``return_token_id_information`` a model turn's LAST output item (its final
``function_call``, else its ``message``) carries ``prompt_token_ids``, ``generation_token_ids``
and ``generation_log_probs`` (all three or none; optionally ``routed_experts``), as NeMo Gym's
``responses_converter.postprocess_assistant_message_dict`` does; NeMo RL reads them from
``response.output``. This module names those fields and reads them back per turn; it never
re-tokenises anything.

Prefix consistency: a multi-turn trajectory is trainable as one token sequence only when each
turn's prompt ids start with the previous turn's prompt ids followed by its generation ids (the
chat template renders history the way the model produced it). ``prefix_breaks`` counts the turns
where that does not hold; the output row carries the count (``output_row.TOKEN_PREFIX_BREAKS``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "GENERATION_LOG_PROBS",
    "GENERATION_TOKEN_IDS",
    "PROMPT_TOKEN_IDS",
    "ROUTED_EXPERTS",
    "TOKEN_FIELDS",
    "prefix_breaks",
    "turn_tokens",
]

PROMPT_TOKEN_IDS: Final = "prompt_token_ids"  # noqa: S105 (a key name, not a password)
GENERATION_TOKEN_IDS: Final = "generation_token_ids"  # noqa: S105 (a key name, not a password)
GENERATION_LOG_PROBS: Final = "generation_log_probs"
ROUTED_EXPERTS: Final = "routed_experts"
TOKEN_FIELDS: Final = (PROMPT_TOKEN_IDS, GENERATION_TOKEN_IDS, GENERATION_LOG_PROBS)
"""The three fields NeMo Gym puts on a turn's last output item (in this order)."""


def turn_tokens(output: Iterable[Any]) -> list[Mapping[str, Any]]:
    """The output items that carry a turn's token ids, in trajectory order (one per turn)."""
    return [i for i in output if isinstance(i, dict) and PROMPT_TOKEN_IDS in i]


def prefix_breaks(output: Iterable[Any]) -> int | None:
    """Turns whose prompt ids do not extend the previous turn's prompt + generation ids.

    None when no item carries token ids (nothing was asked for, or nothing came back), so a row
    without token ids gets no flag.
    """
    turns = turn_tokens(output)
    if not turns:
        return None
    breaks = 0
    for previous, turn in itertools.pairwise(turns):
        prompt, generation = previous[PROMPT_TOKEN_IDS], previous[GENERATION_TOKEN_IDS]
        current = turn[PROMPT_TOKEN_IDS]
        cut = len(prompt)
        if current[:cut] != prompt or current[cut : cut + len(generation)] != generation:
            breaks += 1
    return breaks
