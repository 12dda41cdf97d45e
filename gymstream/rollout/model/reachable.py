"""Is a model endpoint there at all? One cheap request before anything is published.

``GET {base_url}/models`` (every OpenAI-compatible server has it): any answer but 401/403 means
the endpoint is up (a 404 is a server without that route: still up). A refused connection, an
unknown host or no answer within the timeout is ``None`` -> the problem, in words. A 401/403 is
a wrong or missing API key, which every rollout would fail on. Workers keep their own outage
handling for a model that worked and then went down; this only stops a run that could not
start (a wrong --model-base-url cost 10 minutes of the outage budget).
"""

from __future__ import annotations

import aiohttp

from gymstream.settings import ModelSettings

__all__ = ["model_problem"]


async def model_problem(model: ModelSettings, *, timeout_s: float = 5.0) -> str | None:
    """None when every endpoint of ``model`` answers; else what is wrong with the first that
    does not (one phrase naming its URL)."""
    headers = {}
    if model.api_key is not None:
        headers["Authorization"] = f"Bearer {model.api_key.get_secret_value()}"
    timeout = aiohttp.ClientTimeout(
        total=timeout_s, connect=min(timeout_s, model.connect_timeout_s)
    )
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for base_url in model.base_urls or (model.base_url,):
            url = f"{base_url.rstrip('/')}/models"
            try:
                async with session.get(url, headers=headers) as answer:
                    if answer.status in (401, 403):
                        return f"{url} refused the API key (HTTP {answer.status})"
            except TimeoutError:
                return f"{url} did not answer within {timeout_s:g} s"
            except aiohttp.ClientError as exc:
                return f"{url}: {type(exc).__name__}: {exc}"
    return None
