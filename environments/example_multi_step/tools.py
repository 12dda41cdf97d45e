"""The example_multi_step tools: get_synonym_value (sum of code points), extract_synonym_values.

Request models as NeMo Gym 0.7.0's server declares them (pydantic, lax: ``"5"`` is an int,
extra keys are ignored); a violation answers NeMo Gym's 422 text (``typed_tool``).
"""

from __future__ import annotations

from typing import Any

import pydantic

from gymstream.nemo_gym.servers.tool_answers import typed_tool

__all__ = [
    "TOOLS",
    "ExtractSynonymValuesRequest",
    "GetSynonymValueRequest",
    "extract_synonym_values",
    "get_synonym_value",
    "synonym_value",
]


class GetSynonymValueRequest(pydantic.BaseModel):
    synonym: str


class ExtractSynonymValuesRequest(pydantic.BaseModel):
    synonym_values: list[int]


def synonym_value(synonym: str) -> int:
    """The value NeMo Gym's server gives a synonym: the sum of its characters' code points."""
    return sum(map(ord, synonym))


def get_synonym_value(session: Any, body: GetSynonymValueRequest) -> dict[str, int]:
    """``{"synonym_value": sum(ord(c) for c in synonym)}``."""
    return {"synonym_value": synonym_value(body.synonym)}


def extract_synonym_values(session: Any, body: ExtractSynonymValuesRequest) -> dict[str, bool]:
    """``{"success": true}``; the verifier reads the values back from the call's arguments."""
    return {"success": True}


TOOLS = {
    "get_synonym_value": typed_tool(GetSynonymValueRequest, get_synonym_value),
    "extract_synonym_values": typed_tool(ExtractSynonymValuesRequest, extract_synonym_values),
}
