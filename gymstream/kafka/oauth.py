"""OAUTHBEARER token providers (aiokafka's AbstractTokenProvider) built from KafkaSettings.

Three sources, exactly one per settings (KafkaSettings checks that): a static token, a file that
holds the token (an agent such as a sidecar rotates it; it is read again once the last read is
``refresh_s`` old), or a command whose stdout is the token (run again after ``refresh_s``).
A source that fails raises ConfigError naming it; the token itself is never logged.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka.abc import AbstractTokenProvider

from gymstream.errors import ConfigError
from gymstream.settings import KafkaSettings

__all__ = ["RefreshingTokenProvider", "token_provider"]


class RefreshingTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka: untyped
    """Reuses the token ``fetch`` returned until it is ``refresh_s`` old (None: forever)."""

    def __init__(self, fetch: Callable[[], Awaitable[str]], refresh_s: float | None) -> None:
        self._fetch = fetch
        self._refresh_s = refresh_s
        self._token: str | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:  # one fetch however many connections ask at once
            stale = (
                self._refresh_s is not None
                and time.monotonic() - self._fetched_at >= self._refresh_s
            )
            if self._token is None or stale:
                token = (await self._fetch()).strip()
                if not token:
                    raise ConfigError("the OAUTHBEARER token source gave an empty token")
                self._token, self._fetched_at = token, time.monotonic()
            return self._token


def _static(token: str) -> Callable[[], Awaitable[str]]:
    async def fetch() -> str:
        return token

    return fetch


def _read(path: str) -> str:
    return Path(path).expanduser().read_text("utf-8")


def _from_file(path: str) -> Callable[[], Awaitable[str]]:
    async def fetch() -> str:
        try:
            return await asyncio.to_thread(_read, path)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the OAUTHBEARER token file {path} ({exc.strerror}): check "
                "GYMSTREAM_KAFKA_SASL_OAUTH_TOKEN_FILE"
            ) from None

    return fetch


def _from_command(command: str) -> Callable[[], Awaitable[str]]:
    async def fetch() -> str:
        argv = shlex.split(command)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot run the OAUTHBEARER token command {argv[0]!r} ({exc.strerror}): check "
                "GYMSTREAM_KAFKA_SASL_OAUTH_TOKEN_COMMAND"
            ) from None
        stdout, stderr = await proc.communicate()
        if proc.returncode != 0:
            said = stderr.decode("utf-8", "replace").strip().splitlines()
            raise ConfigError(
                f"the OAUTHBEARER token command {argv[0]!r} exited with {proc.returncode}"
                + (f": {said[-1]}" if said else "")
            )
        return stdout.decode("utf-8")

    return fetch


def token_provider(settings: KafkaSettings) -> RefreshingTokenProvider | None:
    """The provider for OAUTHBEARER settings; None for any other mechanism."""
    if settings.sasl_mechanism != "OAUTHBEARER":
        return None
    if settings.sasl_oauth_token is not None:
        return RefreshingTokenProvider(_static(settings.sasl_oauth_token.get_secret_value()), None)
    if settings.sasl_oauth_token_file is not None:
        fetch = _from_file(settings.sasl_oauth_token_file)
    elif settings.sasl_oauth_token_command is not None:
        if not shlex.split(settings.sasl_oauth_token_command):
            raise ConfigError("GYMSTREAM_KAFKA_SASL_OAUTH_TOKEN_COMMAND is empty")
        fetch = _from_command(settings.sasl_oauth_token_command)
    else:  # KafkaSettings refuses OAUTHBEARER without a source
        raise ConfigError("sasl_mechanism OAUTHBEARER needs a token source")
    return RefreshingTokenProvider(fetch, settings.sasl_oauth_refresh_s)
