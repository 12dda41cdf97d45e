"""Command-line overrides of a row's request: ``KEY=VALUE`` parsed, merged over the params."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from gymstream.nemo_gym.rows.validation import PARAMS_FIELD

__all__ = ["apply_overrides", "metadata_object", "parse_override", "with_extra_body_seed"]

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


def metadata_object(metadata: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``metadata[key]`` read as NeMo Gym reads ``extra_body`` / ``chat_template_kwargs`` there:
    a JSON object in a string (absent or empty: ``{}``). Raises ``ValueError`` otherwise."""
    text = metadata.get(key) or "{}"
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object in a string, got {text!r:.100}")
    return value


def with_extra_body_seed(row: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """NeMo Gym's ``num_repeats_add_seed``: a new row whose ``metadata.extra_body`` (a JSON
    object in a string, which a vllm_model merges into its request) has ``seed`` set.

    Raises ``ValueError`` if the row has no params object or its ``metadata.extra_body`` is not
    a JSON object string (NeMo Gym's collector crashes there).
    """
    params = row.get(PARAMS_FIELD)
    if not isinstance(params, dict):
        raise ValueError(f"row has no {PARAMS_FIELD} object to add a seed to")
    metadata = params.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("metadata must be an object to carry extra_body")
    extra_body = metadata_object(metadata, "extra_body")
    extra_body["seed"] = seed
    encoded = json.dumps(extra_body)  # NeMo Gym's json.dumps, separators and all
    merged = dict(row)
    merged[PARAMS_FIELD] = {**params, "metadata": {**metadata, "extra_body": encoded}}
    return merged
