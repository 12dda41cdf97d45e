"""Topic layout: load topics.yaml, name every topic and group, create and check topics.

Names are defined here and nowhere else: ``<prefix>.tasks.<agent>``, ``<prefix>.results``,
``<prefix>.failures``, ``<prefix>.runs``; worker groups ``<prefix>-worker-<agent>``, sink groups
``<prefix>-sink-<run id>``.

A namespace (docs/scopes.md) scopes the task topics and worker groups, nothing else: in the
``shared`` one they keep the names above; in any other, ``<prefix>.scope.<namespace>.tasks.<agent>``
and ``<prefix>.scope.<namespace>.worker.<agent>``. A namespace has no dot, so no two namespaces
(nor a namespace and the shared names) can make the same name. Results, failures and the runs
topic are the deployment's, whatever the namespace: they are keyed and filtered by run id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gymstream.errors import ConfigError

__all__ = [
    "DEFAULT_PREFIX",
    "NAMESPACE_PATTERN",
    "SHARED_NAMESPACE",
    "ApplyReport",
    "TopicLayout",
    "TopicSpec",
    "apply_topics",
    "load_layout",
    "private_namespace",
]

DEFAULT_PREFIX = "gymstream"
SHARED_NAMESPACE = "shared"
"""The namespace of a deployment's long-running workers: today's names, no scope part."""
NAMESPACE_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_UNSAFE_NS = re.compile(r"[^A-Za-z0-9_-]")
Auto = Literal["auto"]
_TOPIC_ALREADY_EXISTS = 36


class TopicDefaults(BaseModel):
    """Settings of one topic kind; unset keys fall back to ``defaults``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partitions: int | None = Field(None, ge=1)
    replication_factor: int | Auto | None = None
    min_insync_replicas: int | Auto | None = None
    retention_ms: int | None = None
    max_message_bytes: int | None = None
    cleanup_policy: Literal["delete", "compact", "compact,delete"] | None = None
    segment_ms: int | None = Field(None, ge=1)


class TopicsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: TopicDefaults = TopicDefaults()
    tasks: TopicDefaults = TopicDefaults()
    results: TopicDefaults = TopicDefaults()
    failures: TopicDefaults = TopicDefaults()
    runs: TopicDefaults = TopicDefaults()


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as it must exist on the cluster."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass(frozen=True)
class TopicLayout:
    """Every name of the system, from one prefix and one topics file."""

    prefix: str
    file: TopicsFile
    namespace: str = SHARED_NAMESPACE
    """Whose workers take the tasks (see the module doc); ``scoped`` makes a layout of another."""

    def scoped(self, namespace: str) -> TopicLayout:
        """The same deployment's layout in ``namespace`` (raises ConfigError for a bad name)."""
        if not re.fullmatch(NAMESPACE_PATTERN, namespace):
            raise ConfigError(
                f"namespace {namespace!r}: use 1-80 letters, digits, '_' or '-' (no dots)"
            )
        return replace(self, namespace=namespace)

    @property
    def shared(self) -> bool:
        return self.namespace == SHARED_NAMESPACE

    @property
    def scope_prefix(self) -> str:
        """What every task topic and worker group of a non-shared namespace starts with."""
        return f"{self.prefix}.scope.{self.namespace}."

    def tasks(self, agent: str) -> str:
        if self.shared:
            return f"{self.prefix}.tasks.{_SAFE.sub('_', agent)}"
        return f"{self.scope_prefix}tasks.{_SAFE.sub('_', agent)}"

    @property
    def results(self) -> str:
        return f"{self.prefix}.results"

    @property
    def failures(self) -> str:
        return f"{self.prefix}.failures"

    @property
    def runs(self) -> str:
        return f"{self.prefix}.runs"

    def worker_group(self, agent: str) -> str:
        if self.shared:
            return f"{self.prefix}-worker-{_SAFE.sub('_', agent)}"
        return f"{self.scope_prefix}worker.{_SAFE.sub('_', agent)}"

    def sink_group(self, run_id: str) -> str:
        return f"{self.prefix}-sink-{_SAFE.sub('_', run_id)}"

    def specs(self, agents: Iterable[str], brokers: int) -> list[TopicSpec]:
        """The topics the given agents need, sized for a cluster of ``brokers`` brokers."""
        kinds: list[tuple[str, TopicDefaults]] = [
            (self.results, self.file.results),
            (self.failures, self.file.failures),
            (self.runs, self.file.runs),
        ]
        kinds += [(self.tasks(a), self.file.tasks) for a in sorted(set(agents))]
        return [self._spec(name, kind, brokers) for name, kind in kinds]

    def _spec(self, name: str, kind: TopicDefaults, brokers: int) -> TopicSpec:
        d = self.file.defaults

        def pick(field: str, fallback: Any) -> Any:
            value = getattr(kind, field)
            if value is None:
                value = getattr(d, field)
            return fallback if value is None else value

        rf = pick("replication_factor", "auto")
        rf = min(3, brokers) if rf == "auto" else int(rf)
        if rf > brokers:
            raise ConfigError(
                f"topics.yaml: {name}: replication_factor {rf} needs {rf} brokers, "
                f"the cluster has {brokers}; use 'auto' or a smaller number"
            )
        isr = pick("min_insync_replicas", "auto")
        isr = max(1, rf - 1) if isr == "auto" else int(isr)
        configs = {
            "min.insync.replicas": str(isr),
            "retention.ms": str(pick("retention_ms", 604_800_000)),
            "max.message.bytes": str(pick("max_message_bytes", 16 * 1024 * 1024)),
            "cleanup.policy": str(pick("cleanup_policy", "delete")),
        }
        segment_ms = pick("segment_ms", None)
        if segment_ms is not None:
            configs["segment.ms"] = str(segment_ms)
        return TopicSpec(name, int(pick("partitions", 6)), rf, configs)


def private_namespace(run_id: str) -> str:
    """The private namespace of a run: ``run-<run id, made safe>-<8 hex of its hash>``.

    Derived from the run id alone, so a resume of the run (same id) finds its own leftovers, and
    two runs never share one (the hash tells apart ids that read the same once made safe).
    """
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"run-{_UNSAFE_NS.sub('_', run_id)[:40]}-{digest}"


def default_topics_text() -> str:
    """The packaged ``topics.yaml`` (package data: found the same from a checkout or a wheel).

    The repository's top-level ``topics.yaml`` is the user-facing copy of this file; a unit test
    keeps the two identical.
    """
    return resources.files(__package__).joinpath("topics.yaml").read_text(encoding="utf-8")


def load_layout(path: Path | None = None, prefix: str = DEFAULT_PREFIX) -> TopicLayout:
    """Read ``topics.yaml``: the given file, or the packaged one when ``path`` is None."""
    where = "topics.yaml (packaged)" if path is None else str(path)
    try:
        text = default_topics_text() if path is None else path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        return TopicLayout(prefix, TopicsFile.model_validate(data))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read topics file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {field}: {first['msg']}") from exc


@dataclass
class ApplyReport:
    """What ``apply_topics`` did: topics created, topics that already matched, and differences."""

    created: list[str]
    unchanged: list[str]
    differences: list[str]


async def apply_topics(
    kafka_options: Mapping[str, Any], layout: TopicLayout, agents: Iterable[str]
) -> ApplyReport:
    """Create the topics the agents need; report (never change) existing ones that differ.

    Replication is sized to the cluster's broker count ("auto" in topics.yaml).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**kafka_options)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        specs = layout.specs(agents, brokers=max(1, len(cluster.get("brokers", []))))
        existing = set(await admin.list_topics())
        report = ApplyReport([], [], [])
        missing = [s for s in specs if s.name not in existing]
        for spec in missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        spec.replication_factor,
                        topic_configs=spec.configs,
                    )
                ],
                timeout_ms=30_000,
            )
            # topic_errors: (name, error_code, error_message[, ...]); 36 = TOPIC_ALREADY_EXISTS
            code, message = response.topic_errors[0][1], response.topic_errors[0][2]
            if code == 0:
                report.created.append(spec.name)
            elif code == _TOPIC_ALREADY_EXISTS:
                existing.add(spec.name)  # a concurrent apply won the race: check it below
            else:
                raise ConfigError(f"cannot create topic {spec.name}: error {code}: {message}")
        await _wait_until_visible(admin, [s.name for s in specs])
        present = [s for s in specs if s.name in existing]
        if present:
            meta = await admin.describe_topics([s.name for s in present])
            by_name = {m["topic"]: m for m in meta}
            resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in present]
            described = await admin.describe_configs(resources)
            actual_cfg: dict[str, dict[str, str]] = {}
            for response in described:
                for res in response.resources:
                    # (error_code, error_message, resource_type, resource_name, configs)
                    actual_cfg[res[3]] = {c[0]: c[1] for c in res[4]}
            for spec in present:
                diffs = _differences(spec, by_name.get(spec.name), actual_cfg.get(spec.name, {}))
                if diffs:
                    report.differences.extend(f"{spec.name}: {d}" for d in diffs)
                else:
                    report.unchanged.append(spec.name)
        return report
    finally:
        await admin.close()


async def _wait_until_visible(admin: Any, names: list[str], timeout_s: float = 30.0) -> None:
    """Wait until the metadata shows every topic with partitions and leaders (new topics lag)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        meta = await admin.describe_topics(names)
        ready = {
            m["topic"]
            for m in meta
            if m.get("error_code", 0) == 0
            and m.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in m["partitions"])
        }
        if ready >= set(names):
            return
        if loop.time() > deadline:
            missing = ", ".join(sorted(set(names) - ready))
            raise ConfigError(f"topics not ready after {timeout_s:.0f} s: {missing}")
        await asyncio.sleep(0.1)


def _differences(
    spec: TopicSpec, meta: Mapping[str, Any] | None, configs: Mapping[str, str]
) -> list[str]:
    out: list[str] = []
    if meta is not None:
        parts = meta.get("partitions", [])
        if len(parts) != spec.partitions:
            out.append(f"partitions {len(parts)} (topics.yaml says {spec.partitions})")
        if parts:
            rf = len(parts[0].get("replicas", []))
            if rf != spec.replication_factor:
                out.append(f"replication factor {rf} (topics.yaml says {spec.replication_factor})")
    for key, want in spec.configs.items():
        have = configs.get(key)
        if have is not None and have != want:
            out.append(f"{key}={have} (topics.yaml says {want})")
    return out
