"""Options and error handling shared by the pipeline commands."""

from __future__ import annotations

import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from gymstream import eventloop
from gymstream.cli import logs
from gymstream.errors import GymstreamError
from gymstream.kafka import passthrough
from gymstream.kafka.topics import TopicLayout, load_layout
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.config.paths import split_config_option
from gymstream.nemo_gym.config.translate import load_any_config
from gymstream.nemo_gym.servers.head import server_urls
from gymstream.settings import (
    DisplaySettings,
    EventLoopSettings,
    KafkaSettings,
    MetricsSettings,
    RolloutSettings,
    TopicSettings,
    process_environment,
)

T = TypeVar("T")

console = Console(stderr=True)
# wide enough for agent names when the output is not a terminal (logs, CI)
out = Console(width=None if sys.stdout.isatty() else 120)

BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        "--bootstrap-server",
        help="Kafka bootstrap servers (default: $GYMSTREAM_KAFKA_BOOTSTRAP or 127.0.0.1:9092). "
        "Security, client.id and compression: GYMSTREAM_KAFKA_* (`gymstream --help`).",
        show_default=False,
    ),
]
PrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--topic-prefix",
        help="Namespace of topic and group names (default: $GYMSTREAM_TOPIC_PREFIX or gymstream).",
        show_default=False,
    ),
]
TopicsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--topics-file", help="topics.yaml to use (default: the project's).", show_default=False
    ),
]
ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="Comma-separated YAML files, merged in order: gymstream's own (agents/models) or "
        "NeMo Gym's (the same files as ng_run's config_paths, `+config_paths=[a,b]` too, and "
        "their own config_paths followed; env.yaml in the working directory is merged over "
        "them). A NeMo Gym simple_agent without max_steps (unlimited there) is "
        "capped at 16 model calls. Default: every environments/*/config.yaml.",
        show_default=False,
    ),
]
NemoGymHeadOpt = Annotated[
    str | None,
    typer.Option(
        "--nemo-gym-head",
        help="URL of a running NeMo Gym head server (ng_run): its /server_instances gives the "
        "address of every server the --config files give no host/port for.",
        show_default=False,
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log more detail.")]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace an output that belongs to another run.")
]
ModelBaseUrlOpt = Annotated[
    str | None, typer.Option("--model-base-url", help="OpenAI-compatible base URL (/v1).")
]
ModelNameOpt = Annotated[str | None, typer.Option("--model-name", help="Model name.")]
ModelApiOpt = Annotated[
    str | None, typer.Option("--model-api", help="responses or chat_completions.")
]
ModelTokenIdsOpt = Annotated[
    bool | None,
    typer.Option(
        "--model-return-token-ids/--no-model-return-token-ids",
        help="Ask the model for each turn's token ids and log-probs (NeMo Gym's "
        "return_token_id_information; default: $GYMSTREAM_MODEL_RETURN_TOKEN_IDS or the YAML).",
        show_default=False,
    ),
]

MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics on /metrics and readiness on /healthz on this port "
        "(default: $GYMSTREAM_METRICS_PORT, else off).",
        show_default=False,
    ),
]


def settings_error(exc: ValidationError, prefix: str) -> typer.Exit:
    """One line for a bad setting: which variable, what is wrong, what to do (exit code 2)."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    where = f"{prefix}{field.upper()}" if field else f"the {prefix}* variables"
    message = str(first["msg"]).removeprefix("Value error, ")
    return fail(f"{exc.title}: {where}: {message} (fix the variable or the option and run again)")


def kafka_settings(bootstrap: str | None) -> KafkaSettings:
    """Kafka client settings from GYMSTREAM_KAFKA_* (and --bootstrap); a bad one is one line
    (a pass-through setting in Kafka's names too: ``gymstream.kafka.passthrough``)."""
    try:
        settings = KafkaSettings(bootstrap=bootstrap) if bootstrap else KafkaSettings()
        passthrough.check(settings)
    except ValidationError as exc:
        raise settings_error(exc, "GYMSTREAM_KAFKA_") from None
    except GymstreamError as exc:
        raise fail(str(exc)) from None
    return settings


def kafka_settings_help() -> str:
    """The GYMSTREAM_KAFKA_* variables with their defaults, for `gymstream --help`."""
    lines = ["Kafka client settings (environment; --bootstrap overrides the first):"]
    for name, info in KafkaSettings.model_fields.items():
        default = "" if info.default in (None, "") else f" (default: {info.default})"
        what = f" {info.description}" if info.description else ""
        suffix = "_<NAME>" if name in ("producer", "consumer") else ""
        lines.append(f"GYMSTREAM_KAFKA_{name.upper()}{suffix}{what}{default}")
    return "\n\n".join(lines)


def metrics_settings(port: int | None) -> MetricsSettings:
    """GYMSTREAM_METRICS_* with --metrics-port over the port; a bad value is one line."""
    try:
        return MetricsSettings(port=port) if port is not None else MetricsSettings()
    except ValidationError as exc:
        raise settings_error(exc, "GYMSTREAM_METRICS_") from None


def layout_for(prefix: str | None, topics_file: Path | None) -> TopicLayout:
    topic = TopicSettings(prefix=prefix) if prefix else TopicSettings()
    path = topics_file or (Path(topic.file) if topic.file else None)
    return load_layout(path, topic.prefix)


_ENV_PREFIXES = {
    "ModelSettings": "GYMSTREAM_MODEL_",
    "RetrySettings": "GYMSTREAM_RETRY_",
    "WorkerSettings": "GYMSTREAM_WORKER_",
}


def rollout_settings() -> RolloutSettings:
    """Model, retry and worker settings from the environment; a bad value is one clear line."""
    try:
        return RolloutSettings.from_environment()
    except ValidationError as exc:
        raise settings_error(exc, _ENV_PREFIXES.get(exc.title, "GYMSTREAM_")) from None


def gym_config(config: str | None, nemo_gym_head: str | None = None) -> GymConfig:
    """The merged --config files (or every environment's); a bad file exits with one line."""
    paths = [Path(p) for p in split_config_option(config)] if config else None
    try:
        urls = server_urls(nemo_gym_head) if nemo_gym_head else None
        return load_any_config(paths, environ=process_environment(), head_urls=urls)
    except GymstreamError as exc:
        raise fail(str(exc)) from None


def display_settings() -> DisplaySettings:
    """Log format and progress period from the environment, ``--log-format`` over the first;
    a bad value is one clear line."""
    try:
        settings = DisplaySettings()
    except ValidationError as exc:
        raise settings_error(exc, "GYMSTREAM_") from None
    chosen = logs.chosen_format()
    return settings if chosen is None else settings.model_copy(update={"log_format": chosen})


def setup_logging(verbose: bool) -> None:
    """Log to stderr, as text or JSON lines (``cli/logs.py``)."""
    logs.configure_logging(verbose, display_settings().log_format)


def _listening(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """Whether a bootstrap server accepts TCP connections (something listens there): tells a
    protocol mismatch (SASL against PLAINTEXT, ...) from no broker at all."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (user text is never read as markup) and return the exit."""
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def run(coro: Coroutine[Any, Any, T], *, bootstrap: str = "") -> T:
    """Run a command's coroutine; turn known failures into one clear line and an exit code."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    try:
        return eventloop.run(coro, EventLoopSettings().event_loop)
    except GymstreamError as exc:
        raise fail(str(exc), 2) from None
    except KafkaConnectionError as exc:
        if bootstrap and _listening(bootstrap):
            raise fail(
                f"Kafka at {bootstrap} accepts connections but the Kafka handshake failed ({exc}): "
                "check that GYMSTREAM_KAFKA_SECURITY_PROTOCOL and the GYMSTREAM_KAFKA_SASL_* / "
                "_SSL_* settings (mechanism, credentials, CA file) match the broker's listener, or "
                "that the broker has finished starting",
                1,
            ) from None
        raise fail(
            f"cannot reach Kafka at {bootstrap or 'the bootstrap servers'} ({exc}); start one with "
            "`gymstream kafka start` or set GYMSTREAM_KAFKA_BOOTSTRAP / --bootstrap",
            1,
        ) from None
    except KafkaError as exc:
        hint = ""
        if type(exc).__name__ == "NodeNotReadyError":  # also what a refused SASL login looks like
            hint = (
                "; if the cluster needs a login, check GYMSTREAM_KAFKA_SECURITY_PROTOCOL and the "
                "GYMSTREAM_KAFKA_SASL_* / _SSL_* settings (gymstream --help)"
            )
        raise fail(f"Kafka error: {exc}{hint}", 1) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
