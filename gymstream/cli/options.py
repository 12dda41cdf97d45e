"""The options the pipeline commands share (typer ``Annotated`` types): one definition each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "BootstrapOpt",
    "ConfigOpt",
    "MetricsPortOpt",
    "ModelApiOpt",
    "ModelBaseUrlOpt",
    "ModelNameOpt",
    "ModelTokenIdsOpt",
    "NemoGymHeadOpt",
    "OverwriteOpt",
    "PrefixOpt",
    "TopicsFileOpt",
    "VerboseOpt",
]

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
