"""Command-line overrides of a row's request: ``KEY=VALUE`` parsed, merged over the params."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from gymstream.nemo.validation import PARAMS_FIELD

__all__ = ["apply_overrides", "parse_override"]

_DECODER: Final = msgspec.json.Decoder()


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``: VALUE as JSON if it parses (0.6, true, [1,2]), else as the string.

    Keys are top-level keys of ``responses_create_params`` (``a.b`` is not a nested path).
    Raises ``ValueError`` if there is no ``=`` or the key is empty.
    """
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override {text!r}: expected KEY=VALUE, e.g. temperature=0.6")
    try:
        value: Any = _DECODER.decode(value_text)
    except msgspec.DecodeError:
        value = value_text
    return key, value


def apply_overrides(row: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new row whose ``responses_create_params`` has ``overrides`` merged key by key.

    Shallow: neither ``row`` nor its params dict is changed; other values are shared, not copied.
    Raises ``ValueError`` if the row has no params object (``read_rows`` never yields one).
    """
    params = row.get(PARAMS_FIELD)
    if not isinstance(params, dict):
        raise ValueError(f"row has no {PARAMS_FIELD} object to override")
    merged = dict(row)
    merged[PARAMS_FIELD] = {**params, **overrides}
    return merged
