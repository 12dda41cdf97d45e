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
    body = _get_json(head_url, "/server_instances", timeout_s)
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
    text = _get_json(head_url, "/global_config_dict_yaml", timeout_s)
    if not isinstance(text, str):
        raise ConfigError(f"NeMo Gym head server {head_url}: its config is not YAML text")
    return text


def _get_json(head_url: str, path: str, timeout_s: float) -> Any:
    """``GET head_url + path`` decoded as JSON; ConfigError naming the route when it fails."""
    try:
        answer = httpx.get(head_url.rstrip("/") + path, timeout=timeout_s)
        answer.raise_for_status()
        return answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ConfigError(
            f"NeMo Gym head server {head_url}: cannot read {path} ({exc}); "
            "is `ng_run` running there?"
        ) from exc
