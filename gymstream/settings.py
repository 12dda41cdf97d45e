"""Configuration models (pydantic-settings): the only place that reads the environment.

Every setting is also a CLI option; values are validated once at startup and passed down.
Environment variables: ``GYMSTREAM_KAFKA_*``, ``GYMSTREAM_MODEL_*`` (the API key falls back to
``OPENAI_API_KEY``), ``GYMSTREAM_WORKER_*``, ``GYMSTREAM_TOPIC_*``, ``GYMSTREAM_EVENT_LOOP``,
``GYMSTREAM_METRICS_*``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_COMPRESSION",
    "DisplaySettings",
    "EventLoopSettings",
    "KafkaSettings",
    "MetricsSettings",
    "ModelSettings",
    "RetrySettings",
    "RolloutSettings",
    "ScopeSettings",
    "ServerSettings",
    "TopicSettings",
    "VllmOptions",
    "WorkerSettings",
    "process_environment",
    "read_properties",
    "use_kafka_config_file",
]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
DEFAULT_COMPRESSION: Compression = "zstd"
"""Codec of every producer (tasks, results, failures, runs): the measurement that picked it is in
docs/performance.md ("Compression")."""
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")


class KafkaSettings(BaseSettings):
    """How to reach Kafka: every client setting, one ``GYMSTREAM_KAFKA_<FIELD>`` variable each.

    Security settings pass through to aiokafka; ``gymstream.kafka.clients`` builds every client
    from them (OAUTHBEARER gets a token provider there: a static token, a token file re-read
    every ``sasl_oauth_refresh_s``, or the stdout of a command). README "Kafka settings" lists
    them all; a bad value stops a command with one line (``gymstream.cli.common``).
    """

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_KAFKA_", frozen=True, extra="ignore")

    bootstrap: str = Field(DEFAULT_BOOTSTRAP, description="Kafka bootstrap servers, host:port,...")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str | None = Field(
        None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or GSSAPI."
    )
    sasl_username: str | None = Field(None, description="PLAIN / SCRAM user name.")
    sasl_password: SecretStr | None = Field(None, description="PLAIN / SCRAM password.")
    ssl_cafile: str | None = Field(None, description="CA bundle that signed the broker's cert.")
    ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: str | None = Field(None, description="Client certificate's private key.")
    request_timeout_ms: int = Field(30_000, description="Timeout of one request to a broker.")
    enable_idempotence: bool = Field(
        True, description="Idempotent producer; turn off only for brokers that lack it."
    )
    # --- issue 12 item 5 (additive): client.id, compression, OAUTHBEARER, SSL key password ---
    client_id: str = Field(
        "gymstream", min_length=1, description="client.id sent to the broker (quotas, logs)."
    )
    compression: Compression = Field(
        DEFAULT_COMPRESSION,
        description="Producer compression codec (none, gzip, snappy, lz4, zstd).",
    )
    sasl_oauth_token: SecretStr | None = Field(
        None, description="OAUTHBEARER: a static bearer token."
    )
    sasl_oauth_token_file: str | None = Field(
        None, description="OAUTHBEARER: a file holding the token (re-read as it rotates)."
    )
    sasl_oauth_token_command: str | None = Field(
        None, description="OAUTHBEARER: a command whose stdout is the token."
    )
    sasl_oauth_refresh_s: float = Field(
        300.0, gt=0, description="OAUTHBEARER: seconds a token from a file or command is reused."
    )
    ssl_password: SecretStr | None = Field(None, description="Password of ssl_keyfile.")
    ssl_check_hostname: bool = Field(True, description="Check the broker's certificate host.")
    watch_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often workers and sinks check that Kafka answers: one warning when it "
        "stops, one (with the outage's length) when it is back.",
    )
    # --- issue 21 item 4: any client setting in Kafka's names (gymstream.kafka.passthrough) ---
    producer: dict[str, str] = Field(
        default_factory=dict,
        description="Producer settings in Kafka's names, one variable each: "
        "GYMSTREAM_KAFKA_PRODUCER_LINGER_MS=5 is linger.ms=5.",
    )
    consumer: dict[str, str] = Field(
        default_factory=dict,
        description="Consumer settings in Kafka's names: GYMSTREAM_KAFKA_CONSUMER_FETCH_MAX_WAIT_MS"
        "=100 is fetch.max.wait.ms=100.",
    )
    config_file: str | None = Field(
        None,
        description="A Kafka client properties file (key=value in Kafka's names; producer. / "
        "consumer. prefixes for one kind); each client takes the settings it knows "
        "(also: gymstream --kafka-config FILE).",
    )
    _properties: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _pass_through(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for kind in ("producer", "consumer"):
                if not data.get(kind):
                    data[kind] = _dotted(os.environ, f"GYMSTREAM_KAFKA_{kind.upper()}_")
        return data

    @model_validator(mode="after")
    def _read_config_file(self) -> KafkaSettings:
        if self.config_file:
            self._properties = read_properties(Path(self.config_file))
        return self

    @property
    def properties(self) -> dict[str, str]:
        """The settings of ``config_file`` (Kafka's names, as written), read once at startup."""
        return dict(self._properties)

    @field_validator("sasl_mechanism")
    @classmethod
    def _known_mechanism(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        mechanism = value.strip().upper()
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"unknown SASL mechanism {value!r}: use one of {', '.join(SASL_MECHANISMS)}"
            )
        return mechanism

    @model_validator(mode="after")
    def _consistent_security(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if self.sasl_mechanism and not sasl:
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs security_protocol SASL_SSL or "
                "SASL_PLAINTEXT: set GYMSTREAM_KAFKA_SECURITY_PROTOCOL"
            )
        if sasl and not self.sasl_mechanism:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs a sasl_mechanism: set "
                f"GYMSTREAM_KAFKA_SASL_MECHANISM ({', '.join(SASL_MECHANISMS)})"
            )
        sources = [
            name
            for name in ("sasl_oauth_token", "sasl_oauth_token_file", "sasl_oauth_token_command")
            if getattr(self, name) is not None
        ]
        if self.sasl_mechanism == "OAUTHBEARER" and len(sources) != 1:
            raise ValueError(
                "sasl_mechanism OAUTHBEARER needs exactly one of sasl_oauth_token, "
                "sasl_oauth_token_file, sasl_oauth_token_command "
                f"(set: {', '.join(sources) or 'none'})"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs sasl_username and sasl_password "
                "(GYMSTREAM_KAFKA_SASL_USERNAME, GYMSTREAM_KAFKA_SASL_PASSWORD)"
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, name)
                if value is not None and not Path(value).is_file():
                    raise ValueError(f"GYMSTREAM_KAFKA_{name.upper()}: no such file: {value}")
        return self

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client built from these settings.

        Everything but the OAUTHBEARER token provider: build clients with
        ``gymstream.kafka.clients`` (``client_options(settings)`` adds it).
        """
        opts: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
            "client_id": self.client_id,
        }
        if self.sasl_mechanism == "OAUTHBEARER":
            opts["sasl_mechanism"] = self.sasl_mechanism
        elif self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_username
            opts["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            context = create_ssl_context(
                cafile=self.ssl_cafile,
                certfile=self.ssl_certfile,
                keyfile=self.ssl_keyfile,
                password=self.ssl_password.get_secret_value() if self.ssl_password else None,
            )
            context.check_hostname = self.ssl_check_hostname
            opts["ssl_context"] = context
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
    outage_budget_s: float = Field(
        300.0,
        gt=0,
        description="A model outage (endpoint down, 5xx, timeouts) pauses workers and retries "
        "rollouts in flight for this long; after it, rollouts fail as before. Capped at "
        "rollout_deadline_s (outage_budget_capped_s).",
    )

    @property
    def outage_budget_capped_s(self) -> float:
        """The outage budget a worker uses: never longer than a rollout's deadline, so a model
        that stays down gives every rollout in flight an outcome no later than the deadline
        would have (600 s against 300 s left runs without any outcome for over 5 minutes)."""
        return min(self.outage_budget_s, self.rollout_deadline_s)


class VllmOptions(BaseModel):
    """A NeMo Gym ``vllm_model``'s options that change what the model is asked (0.7.0's names).

    Applied to every Chat Completions body as NeMo Gym's ``vllm_model`` does (see
    ``gymstream.nemo_gym.servers.vllm_model``); set only by a NeMo Gym YAML's ``vllm_model``
    instance.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    extra_body: dict[str, Any] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    forward_request_chat_template_kwargs: bool = False
    sampling_overrides: dict[str, Any] | None = None
    uses_reasoning_parser: bool = False
    replace_developer_role_with_system: bool = False


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
    return_token_id_information: bool = Field(
        False,
        validation_alias=AliasChoices(
            "GYMSTREAM_MODEL_RETURN_TOKEN_IDS", "return_token_id_information"
        ),
        description="Ask the model for each turn's prompt and generation token ids and "
        "log-probs (NeMo Gym's vllm_model option); a turn without them fails the rollout.",
    )
    base_urls: tuple[str, ...] = Field(
        (),
        description="Several servers of the same model (NeMo Gym's vllm_model base_url list): "
        "each rollout sticks to one, assigned round robin; empty: base_url only.",
    )
    vllm: VllmOptions | None = Field(
        None, description="A NeMo Gym vllm_model's request options (from its YAML only)."
    )


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
    max_message_bytes: int | None = Field(
        None,
        ge=1024,
        description="A task message larger than this is poison. Default: none of the worker's "
        "own; the task topic's max.message.bytes (topics.yaml) is the one limit, and produce "
        "rejects a larger row at file:line.",
    )
    policy_version: int | None = None
    session_timeout_ms: int = Field(
        10_000,
        ge=1000,
        description="A worker that dies is replaced in its group after this long (the broker "
        "bounds it by group.min.session.timeout.ms).",
    )
    heartbeat_interval_ms: int = Field(1_000, ge=100)
    slow_model_call_s: float = Field(
        30.0, gt=0, description="A model call longer than this is slow (logged per streak)."
    )
    slow_model_calls: int = Field(
        3, ge=1, description="Slow model calls within a minute that start a logged streak."
    )


class TopicSettings(BaseSettings):
    """Where topic names come from: a prefix (namespace) and the topics file."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_TOPIC_", frozen=True, extra="ignore")

    prefix: str = Field("gymstream", pattern=r"^[A-Za-z0-9._-]+$")
    file: str | None = Field(None, description="Path of topics.yaml (default: the project's).")


class ScopeSettings(BaseSettings):
    """Whose workers take a run's tasks: ``GYMSTREAM_NAMESPACE`` (docs/scopes.md).

    Unset, ``collect`` runs in a private namespace of its run and the other commands in the
    ``shared`` one; set (or ``--namespace``), every command uses the one named.
    """

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_", frozen=True, extra="ignore")

    namespace: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,80}$",
        description="Namespace of task topics and worker groups (default: collect private, "
        "others shared).",
    )


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
    (``gymstream.nemo_gym.config.agents.resolve_model``). ``worker.concurrency`` is replaced by
    the agent's own.
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


class MetricsSettings(BaseSettings):
    """Prometheus metrics and ``/healthz`` of a long-running command (worker, sink, collect)."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_METRICS_", frozen=True, extra="ignore")

    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve /metrics and /healthz on this port (default: off; 0 picks a free one).",
    )
    host: str = Field(
        "0.0.0.0",  # noqa: S104  # scraped from other hosts; opt-in (no port, no server)
        description="Address the metrics server listens on.",
    )


class DisplaySettings(BaseSettings):
    """How a command talks to its operator: the log format and the progress line's period."""

    model_config = SettingsConfigDict(env_prefix="GYMSTREAM_", frozen=True, extra="ignore")

    log_format: Literal["text", "json"] = Field(
        "text", description="text (default) or json: one JSON object per log record."
    )
    progress_interval_s: float = Field(
        10.0, gt=0, description="Seconds between progress lines when stderr is not a terminal."
    )


def _dotted(environ: Any, prefix: str) -> dict[str, str]:
    """``{kafka.name: value}`` of the variables ``<prefix>KAFKA_NAME`` (``_`` is ``.``)."""
    return {
        key.removeprefix(prefix).lower().replace("_", "."): value
        for key, value in environ.items()
        if key.startswith(prefix) and len(key) > len(prefix)
    }


def read_properties(path: Path) -> dict[str, str]:
    """A Java-style properties file (``key=value`` or ``key: value``; ``#`` / ``!`` comments),
    as Kafka's own tools read ``--command-config``; ValueError names the file and line."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read Kafka properties file {path}: {exc.strerror}") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise ValueError(f"{path}:{number}: expected key=value, got {line!r}")
        out[line[:cut].strip()] = line[cut + 1 :].strip()
    return out


def use_kafka_config_file(path: Path) -> None:
    """``--kafka-config``: every Kafka client of this process and of the processes it starts
    reads ``path`` (as GYMSTREAM_KAFKA_CONFIG_FILE)."""
    os.environ["GYMSTREAM_KAFKA_CONFIG_FILE"] = str(path.resolve())


def process_environment() -> dict[str, str]:
    """A copy of the process environment, for what must read arbitrary variables by name
    (NeMo Gym configs' ``${oc.env:NAME,default}``); taken at the boundary and passed down."""
    return dict(os.environ)
