"""A running NeMo Gym head server's ``/server_instances``: where ``ng_run`` put every server.

``ng_run`` picks ports itself, so a config may give no ``host``/``port``; the head server
(``--nemo-gym-head URL``) lists each server's ``process_name`` (the config's instance name) and
``url``. Read once at startup, before any worker runs.
"""

from __future__ import annotations

from typing import Any

import httpx

from gymstream.errors import ConfigError

__all__ = ["head_config_yaml", "server_urls"]


def server_urls(head_url: str, *, timeout_s: float = 10.0) -> dict[str, str]:
    """``{instance name: base URL}`` from the head server at ``head_url``.

    Raises ConfigError when the head server cannot be reached or answers something else.
    """
    url = head_url.rstrip("/") + "/server_instances"
    try:
        answer = httpx.get(url, timeout=timeout_s)
        answer.raise_for_status()
        body: Any = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ConfigError(
            f"NeMo Gym head server {head_url}: cannot read /server_instances ({exc}); "
            "is `ng_run` running there?"
        ) from exc
    if not isinstance(body, list):
        raise ConfigError(f"NeMo Gym head server {head_url}: /server_instances is not a list")
    urls: dict[str, str] = {}
    for item in body:
        if isinstance(item, dict) and isinstance(item.get("process_name"), str):
            address = item.get("url") or f"http://{item.get('host')}:{item.get('port')}"
            urls[item["process_name"]] = str(address)
    return urls


def head_config_yaml(head_url: str, *, timeout_s: float = 10.0) -> str:
    """The merged config the head server at ``head_url`` runs with (``/global_config_dict_yaml``:
    a JSON string of YAML text, as NeMo Gym's own ``ServerClient`` reads it).

    Raises ConfigError when the head server cannot be reached or answers something else.
    """
    url = head_url.rstrip("/") + "/global_config_dict_yaml"
    try:
        answer = httpx.get(url, timeout=timeout_s)
        answer.raise_for_status()
        text: Any = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ConfigError(
            f"NeMo Gym head server {head_url}: cannot read /global_config_dict_yaml ({exc}); "
            "is `ng_run` running there?"
        ) from exc
    if not isinstance(text, str):
        raise ConfigError(f"NeMo Gym head server {head_url}: its config is not YAML text")
    return text
