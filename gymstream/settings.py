"""Configuration models (pydantic-settings): the only place that reads the environment.

Every setting is also a CLI option; values are validated once at startup and passed down.
Environment variables: ``GYMSTREAM_KAFKA_*``, ``GYMSTREAM_MODEL_*`` (the API key falls back to
``OPENAI_API_KEY``), ``GYMSTREAM_WORKER_*``, ``GYMSTREAM_TOPIC_*``, ``GYMSTREAM_EVENT_LOOP``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "EventLoopSettings",
    "KafkaSettings",
    "ModelSettings",
    "RetrySettings",
    "RolloutSettings",
    "ServerSettings",
    "TopicSettings",
    "WorkerSettings",
    "process_environment",
]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class KafkaSettings(BaseSettings):
    """How to reach Kafka. Security settings pass through to aiokafka unchanged."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_KAFKA_", frozen=True, extra="ignore")

    bootstrap: str = Field(DEFAULT_BOOTSTRAP, description="Kafka bootstrap servers, host:port,...")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    request_timeout_ms: int = 30_000
    enable_idempotence: bool = Field(
        True, description="Idempotent producer; turn off only for brokers that lack it."
    )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client built from these settings."""
        opts: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_username
            opts["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            opts["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        return opts


class RetrySettings(BaseSettings):
    """Bounded retries with exponential backoff and full jitter for retriable failures."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_RETRY_", frozen=True, extra="ignore")

    max_attempts: int = Field(4, ge=1, description="Attempts per model call, first one included.")
    backoff_initial_s: float = Field(0.2, gt=0)
    backoff_max_s: float = Field(5.0, gt=0)
    rollout_deadline_s: float = Field(
        300.0, gt=0, description="A rollout that runs longer than this fails as rollout_deadline."
    )


class ModelSettings(BaseSettings):
    """An OpenAI-compatible endpoint. The API key is never logged or printed."""

    model_config = SettingsConfigDict(
        env_prefix="GYMSTREAM_MODEL_", frozen=True, extra="ignore", populate_by_name=True
    )

    base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="OpenAI-compatible base URL ending in /v1"
    )
    name: str = Field("policy", description="Model name sent as `model` in every request.")
    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GYMSTREAM_MODEL_API_KEY", "OPENAI_API_KEY", "api_key")
    )
    api: Literal["responses", "chat_completions"] = Field(
        "responses", description="Which OpenAI API the endpoint serves."
    )
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout (connect, read, write).")
    connect_timeout_s: float = Field(5.0, gt=0)
    max_connections: int = Field(1024, ge=1)


class ServerSettings(BaseSettings):
    """Calls to NeMo Gym's servers over HTTP (resources servers, remote agents)."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_SERVER_", frozen=True, extra="ignore")

    timeout_s: float = Field(
        120.0, gt=0, description="Per-request timeout (a remote agent's /run is a whole rollout)."
    )
    connect_timeout_s: float = Field(5.0, gt=0)
    max_connections: int = Field(1024, ge=1, description="Pooled connections per server.")


class WorkerSettings(BaseSettings):
    """One worker process: which agent, how much work in flight, how often to commit."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_WORKER_", frozen=True, extra="ignore")

    concurrency: int = Field(256, ge=1, description="Rollouts in flight in this process.")
    commit_interval_s: float = Field(0.2, gt=0)
    shutdown_grace_s: float = Field(10.0, ge=0)
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    policy_version: int | None = None
    session_timeout_ms: int = Field(
        10_000,
        ge=1000,
        description="A worker that dies is replaced in its group after this long (the broker "
        "bounds it by group.min.session.timeout.ms).",
    )
    heartbeat_interval_ms: int = Field(1_000, ge=100)


class TopicSettings(BaseSettings):
    """Where topic names come from: a prefix (namespace) and the topics file."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_TOPIC_", frozen=True, extra="ignore")

    prefix: str = Field("gymstream", pattern=r"^[A-Za-z0-9._-]+$")
    file: str | None = Field(None, description="Path of topics.yaml (default: the project's).")


class EventLoopSettings(BaseSettings):
    """Which asyncio event loop a command runs on (``gymstream.eventloop`` checks the choice)."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_", frozen=True, extra="ignore")

    event_loop: str = Field(
        "auto", description="auto (uvloop when installed), uvloop (required) or asyncio."
    )


@dataclass(frozen=True)
class RolloutSettings:
    """What every worker is built with: the model endpoint as the environment sets it, retries,
    and the worker's own settings. Built once at the boundary (CLI, worker entry point, tests)
    and passed down; the library never reads the environment itself.

    ``model`` is the base of each agent's endpoint: its YAML ``models`` entry and the CLI's
    ``--model-*`` options are laid over the fields the environment set
    (``gymstream.config.resolve_model``). ``worker.concurrency`` is replaced by the agent's own.
    """

    model: ModelSettings
    retry: RetrySettings
    worker: WorkerSettings
    server: ServerSettings = field(default_factory=ServerSettings)

    @classmethod
    def from_environment(cls) -> RolloutSettings:
        """Read ``GYMSTREAM_MODEL_*``, ``GYMSTREAM_RETRY_*``, ``GYMSTREAM_WORKER_*`` and
        ``GYMSTREAM_SERVER_*``."""
        return cls(
            model=ModelSettings(),
            retry=RetrySettings(),
            worker=WorkerSettings(),
            server=ServerSettings(),
        )


def process_environment() -> dict[str, str]:
    """A copy of the process environment, for what must read arbitrary variables by name
    (NeMo Gym configs' ``${oc.env:NAME,default}``); taken at the boundary and passed down."""
    return dict(os.environ)
