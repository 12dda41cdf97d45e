"""The example_multi_step tools: get_synonym_value (sum of code points), extract_synonym_values."""

from __future__ import annotations

from typing import Any

__all__ = ["TOOLS", "extract_synonym_values", "get_synonym_value", "synonym_value"]


def synonym_value(synonym: str) -> int:
    """The value NeMo Gym's server gives a synonym: the sum of its characters' code points."""
    return sum(map(ord, synonym))


def get_synonym_value(session: Any, arguments: dict[str, Any]) -> dict[str, int]:
    """``{"synonym_value": sum(ord(c) for c in synonym)}``; ``ValueError`` if not a string."""
    synonym = arguments.get("synonym")
    if not isinstance(synonym, str):
        raise ValueError(f"get_synonym_value needs 'synonym' as a string, got {synonym!r}")
    return {"synonym_value": synonym_value(synonym)}


def extract_synonym_values(session: Any, arguments: dict[str, Any]) -> dict[str, bool]:
    """``{"success": true}``; the values are read back from the call by the verifier.

    Raises ``ValueError`` unless ``synonym_values`` is a list of integers (the schema's type).
    """
    values = arguments.get("synonym_values")
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(
            f"extract_synonym_values needs 'synonym_values' as a list of integers, got {values!r}"
        )
    return {"success": True}


TOOLS = {
    "get_synonym_value": get_synonym_value,
    "extract_synonym_values": extract_synonym_values,
}
