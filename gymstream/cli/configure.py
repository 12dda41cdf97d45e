"""From the options and the environment to typed settings, configuration and agent plans,
once, at the boundary; a bad value is one clear line (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from gymstream.cli import logs
from gymstream.cli.console import fail
from gymstream.errors import GymstreamError
from gymstream.kafka import passthrough
from gymstream.kafka.topics import TopicLayout, load_layout
from gymstream.nemo_gym.config.agents import GymConfig
from gymstream.nemo_gym.config.paths import split_config_option
from gymstream.nemo_gym.config.translate import load_any_config
from gymstream.nemo_gym.servers.head import server_urls
from gymstream.rollout.plan import AgentPlan, AgentPlans, ModelOptions
from gymstream.settings import (
    DisplaySettings,
    KafkaSettings,
    MetricsSettings,
    RolloutSettings,
    TopicSettings,
    process_environment,
)

__all__ = [
    "agent_plan",
    "display_settings",
    "gym_config",
    "kafka_settings",
    "kafka_settings_help",
    "layout_for",
    "metrics_settings",
    "model_options",
    "rollout_settings",
    "settings_error",
    "setup_logging",
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


def model_options(
    base_url: str | None, name: str | None, api: str | None, return_token_ids: bool | None
) -> ModelOptions:
    """The ``--model-*`` options as given (None: not given)."""
    return ModelOptions(
        base_url=base_url, name=name, api=api, return_token_id_information=return_token_ids
    )


def agent_plan(plans: AgentPlans, agent: str) -> AgentPlan:
    """``agent``'s plan; an unknown agent or a model that does not validate is one line."""
    try:
        return plans.plan(agent)
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
