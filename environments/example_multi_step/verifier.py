"""The example_multi_step verifier: the last extract_synonym_values call vs the expected values."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["last_extracted_values", "verify"]


def last_extracted_values(response: dict[str, Any]) -> list[int]:
    """The ``synonym_values`` of the LAST ``extract_synonym_values`` call, ``[]`` if none.

    Departure from NeMo Gym, which crashes (an HTTP 500, so a failed rollout) on such calls:
    arguments that are not JSON, or whose ``synonym_values`` is not a list of integers, count as
    ``[]``. The model produced them, so they score 0 instead of looking like infrastructure trouble.
    """
    for item in reversed(response.get("output") or []):
        if item.get("type") == "function_call" and item.get("name") == "extract_synonym_values":
            try:
                arguments = msgspec.json.decode(item.get("arguments") or "")
            except msgspec.DecodeError:
                return []
            values = arguments.get("synonym_values") if isinstance(arguments, dict) else None
            if isinstance(values, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in values
            ):
                return values
            return []
    return []


async def verify(row: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """NeMo Gym's example_multi_step metrics, computed exactly as its server does.

    ``accuracy``: the values equal ``expected_synonym_values`` as an ordered list; ``reward`` is
    ``float(accuracy)``; ``set_overlap``: share of the expected values present (an empty expected
    list, which NeMo Gym would divide by, gives 1.0 for an empty answer and 0.0 otherwise);
    ``order_instruction_following_failure``: right values, wrong order;
    ``original_term_minefield_hit``: the answer contains the term itself (label or its value).
    Raises ``KeyError`` when the row lacks ``expected_synonym_values`` (the agent reports a
    VerifierError).
    """
    expected: list[int] = list(row["expected_synonym_values"])
    actual = last_extracted_values(response)
    accuracy = actual == expected
    if expected:
        set_overlap = len(set(actual) & set(expected)) / len(expected)
    else:
        set_overlap = 0.0 if actual else 1.0
    minefield_hit = (
        row.get("minefield_label") in actual or row.get("minefield_label_value") in actual
    )
    return {
        "reward": float(accuracy),
        "parsed_synonym_values": actual,
        "accuracy": accuracy,
        "set_overlap": set_overlap,
        "original_term_minefield_hit": minefield_hit,
        "order_instruction_following_failure": not accuracy and set_overlap == 1.0,
    }
