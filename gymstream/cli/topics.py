"""`gymstream topics apply`: create the topics declared in topics.yaml, report differences;
`gymstream topics list|describe`: what the cluster holds (partitions, configs, offsets, consumer
groups and their lag; the queries are in gymstream.kafka.describe);
`gymstream topics asyncapi`: the AsyncAPI document of every topic and message."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from gymstream.cli.common import (
    BootstrapOpt,
    ConfigOpt,
    PrefixOpt,
    TopicsFileOpt,
    gym_config,
    kafka_settings,
    layout_for,
    out,
    run,
    setup_logging,
)
from gymstream.cli.scope import NamespaceOpt, scoped_layout
from gymstream.cli.topic_report import as_json, describe_lines, list_lines
from gymstream.kafka.asyncapi import asyncapi_document, asyncapi_yaml
from gymstream.kafka.clients import client_options
from gymstream.kafka.describe import describe_topic, list_topics
from gymstream.kafka.topics import apply_topics

__all__ = ["topics_app"]

topics_app = typer.Typer(help="Kafka topics declared in topics.yaml.", no_args_is_help=True)


@topics_app.command("apply")
def topics_apply(
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    namespace: NamespaceOpt = None,
    topics_file: TopicsFileOpt = None,
    config: ConfigOpt = None,
    agent: Annotated[
        list[str] | None,
        typer.Option("--agent", help="Only these agents' task topics (default: every agent)."),
    ] = None,
) -> None:
    """Create the topics that are missing and report those that differ; safe to run twice."""
    setup_logging(False)  # aiokafka's own warnings would bury the one-line error
    kafka = kafka_settings(bootstrap)
    layout = scoped_layout(layout_for(topic_prefix, topics_file), namespace)
    agents = agent or list(gym_config(config).agents)
    report = run(apply_topics(client_options(kafka), layout, agents), bootstrap=kafka.bootstrap)
    for name in report.created:
        out.print(f"created   {name}")
    for name in report.unchanged:
        out.print(f"ok        {name}")
    for line in report.differences:
        out.print(f"[yellow]differs[/yellow]   {line}")


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON (one document) instead of aligned text.")
]


@topics_app.command("list")
def topics_list(
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every topic of the cluster, not only the prefix's.")
    ] = False,
    as_document: JsonOpt = False,
) -> None:
    """The topics of the prefix (`--all`: of the cluster): partitions and messages held."""
    setup_logging(False)
    kafka = kafka_settings(bootstrap)
    prefix = "" if every else layout_for(topic_prefix, None).prefix + "."
    topics = run(list_topics(client_options(kafka), prefix), bootstrap=kafka.bootstrap)
    if as_document:
        typer.echo(as_json(topics))
        return
    typer.echo("\n".join(list_lines(topics)))  # plain lines: never wrapped, whatever the width


@topics_app.command("describe")
def topics_describe(
    topic: Annotated[str, typer.Argument(help="The topic's full name (see `topics list`).")],
    bootstrap: BootstrapOpt = None,
    as_document: JsonOpt = False,
) -> None:
    """A topic's partitions (leader, replicas, in-sync, offsets), the configs set on it, and
    every consumer group with committed offsets on it, with its lag per partition."""
    setup_logging(False)
    kafka = kafka_settings(bootstrap)
    state = run(describe_topic(client_options(kafka), topic), bootstrap=kafka.bootstrap)
    if as_document:
        typer.echo(as_json(state))
        return
    typer.echo("\n".join(describe_lines(state)))


@topics_app.command("asyncapi")
def topics_asyncapi(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the document here (default: stdout)."),
    ] = None,
    topics_file: TopicsFileOpt = None,
) -> None:
    """Print the AsyncAPI 3.0 document of every topic and message (docs/asyncapi.yaml)."""
    layout = layout_for(None, topics_file)
    text = asyncapi_yaml(asyncapi_document(metadata.version("gymstream"), layout))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, "utf-8")
