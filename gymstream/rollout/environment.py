"""The Environment protocol (tools + verifier) and loading environments/<name> by name.

An environment is a Python package under ``environments/`` whose ``__init__`` exports
``ENVIRONMENT``: an object with a ``name``, a ``tools`` mapping, ``new_session(row)`` and an async
``verify(row, response)``. The agent loop (``gymstream.rollout.loop``) is the only caller of the
tools and the verifier; it never needs to know which environment it runs.

Tool contract: ``tool(session, arguments) -> result`` where ``session`` is whatever
``new_session(row)`` returned for this rollout, ``arguments`` is the JSON-decoded object the model
sent, and ``result`` is JSON-serialisable. A tool may be a plain function or a coroutine function;
the agent awaits the result when it is awaitable. Sync tools run on the event loop, so they must
be quick (no blocking I/O); anything slow belongs in an ``async def`` tool. A tool that raises is
reported to the model as an error text (NeMo Gym behaviour) and logged.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gymstream.errors import ConfigError, EnvironmentNotFoundError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENVIRONMENTS_PACKAGE",
    "AnyEnvironment",
    "Environment",
    "SessionEnvironment",
    "SimpleEnvironment",
    "Tool",
    "VerifyFn",
    "list_environments",
    "load_environment",
]

ENVIRONMENTS_PACKAGE = "environments"

Tool = Callable[[Any, dict[str, Any]], Any]
"""``tool(session, arguments) -> JSON-able result`` (or an awaitable of one)."""

VerifyFn = Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]
"""``await verify(row, response) -> {"reward": float, ...metrics}``."""


@runtime_checkable
class Environment(Protocol):
    """What the agent loop needs from an environment.

    ``verify`` returns the verifier's own fields: at least ``reward`` (a float) plus any metrics.
    The agent adds ``responses_create_params``, ``response``, ``mask_sample``, ``failure_kind`` and
    ``failure_reason`` around them. ``verify`` may raise on bugs; the agent turns that into
    ``VerifierError``.
    """

    @property
    def name(self) -> str: ...

    @property
    def tools(self) -> Mapping[str, Tool]: ...

    def new_session(self, row: dict[str, Any]) -> Any: ...

    async def verify(self, row: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class SessionEnvironment(Protocol):
    """An environment behind a server (a NeMo Gym resources server over HTTP): the agent loop
    seeds a session, sends each function call's raw arguments, and verifies in that session.

    ``call_tool`` returns the ``function_call_output`` text exactly as the environment made it;
    its errors (and ``seed``'s and ``verify_session``'s) are typed ``GymstreamError``s that the
    agent loop lets through unchanged.
    """

    @property
    def name(self) -> str: ...

    async def seed(self, row: dict[str, Any]) -> Any: ...

    async def call_tool(self, session: Any, name: str, arguments: Any) -> str: ...

    async def verify_session(
        self, session: Any, row: dict[str, Any], response: dict[str, Any]
    ) -> dict[str, Any]: ...


AnyEnvironment = Environment | SessionEnvironment
"""What the agent loop runs: in-process (the fast path) or behind a server."""


def _no_session(row: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class SimpleEnvironment:
    """An Environment assembled from plain functions (both example environments use it).

    ``session_factory`` builds the per-rollout state from the row; the default keeps none.
    """

    name: str
    tools: Mapping[str, Tool]
    verify_fn: VerifyFn
    session_factory: Callable[[dict[str, Any]], Any] = field(default=_no_session)

    def new_session(self, row: dict[str, Any]) -> Any:
        return self.session_factory(row)

    async def verify(self, row: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        return await self.verify_fn(row, response)


def list_environments() -> list[str]:
    """Names of the environment packages found under ``environments/``, sorted."""
    try:
        package = importlib.import_module(ENVIRONMENTS_PACKAGE)
    except ImportError:  # pragma: no cover - only when the package is not installed at all
        return []
    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if info.ispkg and not info.name.startswith(("_", "."))
    )


ENTRY_POINT_GROUP = "gymstream.environments"


def _entry_points() -> dict[str, str]:
    """``{name: "package.module:ATTRIBUTE"}`` registered under ``gymstream.environments``."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _checked(env: Any, where: str) -> Environment:
    if env is None:
        raise ConfigError(f"{where} does not export ENVIRONMENT")
    if not isinstance(env, Environment):
        raise ConfigError(
            f"{where} is a {type(env).__name__}, not an Environment "
            "(needs name, tools, new_session(row) and async verify(row, response))"
        )
    return env


def _import(module_name: str, name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # boundary: a broken environment must name itself
        raise ConfigError(
            f"environment {name!r} failed to import ({module_name}): {type(exc).__name__}: {exc}"
        ) from exc


def load_environment(name: str) -> Environment:
    """The environment ``name`` names, in this order:

    - ``package.module:ATTRIBUTE``: that attribute of that module (a user's own package);
    - a name registered under the ``gymstream.environments`` entry-point group (its value is
      ``package.module:ATTRIBUTE``), so an installed package needs no place in ``environments/``;
    - ``environments.<name>``'s ``ENVIRONMENT``.

    Raises ``EnvironmentNotFoundError`` (listing the known names) for an unknown name, and
    ``ConfigError`` when the module exists but fails to import or exports no usable Environment.
    """
    registered = _entry_points()
    target = name if ":" in name else registered.get(name)
    if target is not None:
        module_name, _, attribute = target.partition(":")
        module = _import(module_name, name)
        return _checked(getattr(module, attribute, None), f"{module_name}:{attribute}")
    known = list_environments()
    if name not in known:
        listed = ", ".join(sorted({*known, *registered})) or "(none found)"
        raise EnvironmentNotFoundError(
            f"unknown environment {name!r}; known environments: {listed}. "
            f"An environment is a package {ENVIRONMENTS_PACKAGE}/<name>/ exporting ENVIRONMENT, "
            f"a 'package.module:ATTRIBUTE', or an entry point in the {ENTRY_POINT_GROUP!r} group."
        )
    module_name = f"{ENVIRONMENTS_PACKAGE}.{name}"
    return _checked(getattr(_import(module_name, name), "ENVIRONMENT", None), module_name)
