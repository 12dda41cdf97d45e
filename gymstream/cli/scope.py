"""`--namespace`: whose workers take a command's tasks (docs/scopes.md).

``collect`` runs in a private namespace of its run unless told otherwise; every other command
runs in the ``shared`` one (a deployment's long-running workers) unless told otherwise. The
option wins over ``GYMSTREAM_NAMESPACE``.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from pydantic import ValidationError

from gymstream.cli.common import fail, run, settings_error
from gymstream.errors import ConfigError, GymstreamError
from gymstream.kafka.clients import client_options
from gymstream.kafka.topics import SHARED_NAMESPACE, TopicLayout, private_namespace
from gymstream.runs.scope import drop_private_scope, is_private
from gymstream.settings import KafkaSettings, ScopeSettings

__all__ = ["NamespaceOpt", "PrivateNamespaceOpt", "release_scope", "scoped_layout"]

log = logging.getLogger("gymstream.cli.scope")

NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help="Namespace of the task topics and worker groups: the workers of one namespace take "
        "only its tasks (default: $GYMSTREAM_NAMESPACE or shared, the deployment's workers).",
        show_default=False,
    ),
]
PrivateNamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help="Run in this namespace: its workers (`gymstream worker --namespace NAME`) take the "
        "tasks too, and this run's workers take its other tasks. Default: $GYMSTREAM_NAMESPACE, "
        "else a private namespace of the run, whose tasks only this command's workers take "
        "(`shared`: the deployment's workers).",
        show_default=False,
    ),
]


def scoped_layout(
    layout: TopicLayout, namespace: str | None, *, private_run: str | None = None
) -> TopicLayout:
    """``layout`` in the chosen namespace: ``namespace``, else $GYMSTREAM_NAMESPACE, else the
    private one of ``private_run`` when given, else ``shared``. A bad name is one line, exit 2."""
    try:
        chosen = namespace or ScopeSettings().namespace
    except ValidationError as exc:
        raise settings_error(exc, "GYMSTREAM_") from None
    if chosen is None:
        chosen = SHARED_NAMESPACE if private_run is None else private_namespace(private_run)
    try:
        return layout.scoped(chosen)
    except ConfigError as exc:
        raise fail(f"--namespace: {exc}") from None


def release_scope(kafka: KafkaSettings, layout: TopicLayout, run_id: str) -> None:
    """After a complete run, delete its private namespace's task topics (nothing waits there;
    a resume would create them again). Another namespace is left alone. The run is complete
    whatever happens here: a failure is a warning naming the command that cleans up later."""
    if not is_private(run_id, layout.namespace):
        return
    outcome = run(_release(kafka, layout, run_id), bootstrap=kafka.bootstrap)
    if isinstance(outcome, str):
        log.warning(
            "run %s is complete, but its private task topics stay (%s); "
            "`gymstream runs delete %s` removes them",
            run_id,
            outcome,
            run_id,
        )
    else:
        log.info("run %s complete: deleted its %d private task topics", run_id, len(outcome))


async def _release(kafka: KafkaSettings, layout: TopicLayout, run_id: str) -> list[str] | str:
    """The topics deleted, or why not."""
    from aiokafka.errors import KafkaError

    try:
        return await drop_private_scope(client_options(kafka), layout, run_id)
    except (GymstreamError, KafkaError) as exc:
        return str(exc)
