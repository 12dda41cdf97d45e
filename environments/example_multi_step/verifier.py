"""The example_multi_step verifier: the last extract_synonym_values call vs the expected values.

NeMo Gym 0.7.0's arithmetic, on the call's arguments as decoded (``[1.0]`` equals ``[1]``;
``"711"`` does not equal ``711``), with ``parsed_synonym_values`` as its pydantic model coerces
them (``list[int]``, lax: ``["711"]`` is reported as ``[711]``).

Deliberate differences (docs/nemo_gym_compat.md): where NeMo Gym's verifier crashes (an HTTP 500,
so a failed rollout that NeMo Gym retries and then drops) we score the model's mistake instead:
arguments that are not JSON, not an object, lack ``synonym_values``, or whose values are not a
list of integers count as ``[]``; an empty ``expected_synonym_values`` (NeMo Gym divides by its
length) gives ``set_overlap`` 1.0 for an empty answer and 0.0 otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic

__all__ = ["last_extracted_values", "verify"]

_INTS = pydantic.TypeAdapter(list[int])


def last_extracted_values(response: dict[str, Any]) -> tuple[list[Any], list[int]]:
    """``(values as decoded, values as list[int])`` of the LAST ``extract_synonym_values`` call;
    ``([], [])`` when there is none or when NeMo Gym's verifier would crash on it."""
    for item in reversed(response.get("output") or []):
        if (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and item.get("name") == "extract_synonym_values"
        ):
            arguments: Any = item.get("arguments")  # None fails as in NeMo Gym (TypeError)
            try:
                values = json.loads(arguments)["synonym_values"]
                return values, _INTS.validate_python(values)
            except (
                json.JSONDecodeError,
                TypeError,
                KeyError,
                IndexError,
                pydantic.ValidationError,
            ):
                return [], []
    return [], []


async def verify(row: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """NeMo Gym's example_multi_step metrics, computed as its server does (see the module doc).

    ``accuracy``: the values equal ``expected_synonym_values`` as an ordered list; ``reward`` is
    ``float(accuracy)``; ``set_overlap``: share of the expected values present;
    ``order_instruction_following_failure``: not accurate but every expected value present;
    ``original_term_minefield_hit``: the values contain the term itself (label or its value).
    Raises ``KeyError`` when the row lacks ``expected_synonym_values`` (the agent reports a
    VerifierError; NeMo Gym answers 422).
    """
    expected: list[int] = list(row["expected_synonym_values"])
    actual, parsed = last_extracted_values(response)
    accuracy = expected == actual
    if expected:
        set_overlap = len(set(actual) & set(expected)) / len(expected)
    else:
        set_overlap = 0.0 if actual else 1.0
    minefield_hit = (
        row.get("minefield_label") in actual or row.get("minefield_label_value") in actual
    )
    return {
        "reward": float(accuracy),
        "parsed_synonym_values": parsed,
        "accuracy": accuracy,
        "set_overlap": set_overlap,
        "original_term_minefield_hit": minefield_hit,
        "order_instruction_following_failure": not accuracy and set_overlap == 1.0,
    }
