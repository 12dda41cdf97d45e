"""Settings of the local Kafka launcher (pydantic-settings): its only reader of the environment.

Environment variables: ``GYMSTREAM_KAFKA_CACHE`` (where the jars are cached), and
``GYMSTREAM_LOCALKAFKA_DATA_DIR``, ``_PORT``, ``_BROKERS``, ``_HEAP_MB``, ``_START_TIMEOUT_S``,
``_JAVA``, ``_MVN``, ``_CONTROLLER_PORT``. Kept beside the launcher rather than in
gymstream/settings.py because only
``gymstream kafka`` and the test fixtures use it; the client-side ``GYMSTREAM_KAFKA_BOOTSTRAP``
stays in gymstream.settings.KafkaSettings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gymstream.localkafka.config import MAX_BROKERS
from gymstream.localkafka.jars import default_cache_dir

__all__ = ["LocalKafkaSettings"]


class LocalKafkaSettings(BaseSettings):
    """Where the local broker's jars and data live, and how it is started."""

    model_config = SettingsConfigDict(
        env_prefix="GYMSTREAM_LOCALKAFKA_", frozen=True, extra="ignore", populate_by_name=True
    )

    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        validation_alias=AliasChoices("GYMSTREAM_KAFKA_CACHE", "cache_dir"),
        description="Cache of the Kafka jars (kafka-<version>/libs below it), outside the repo.",
    )
    data_dir: Path = Field(
        Path(".gymstream/kafka"), description="Data, logs and pids of the local cluster."
    )
    port: int = Field(9092, ge=1024, le=65000, description="Client port of node 1 (base port).")
    controller_port: int | None = Field(
        None, ge=1024, le=65000, description="KRaft controller port of node 1 (default: port+100)."
    )
    brokers: int = Field(1, ge=1, le=MAX_BROKERS, description="Number of nodes.")
    heap_mb: int = Field(512, ge=128, description="JVM heap of each node, in MB.")
    start_timeout_s: float = Field(60.0, gt=0, description="How long to wait for the nodes.")
    java: str = Field("java", description="Java 17+ executable (name on PATH or path).")
    mvn: str = Field("mvn", description="Maven executable, used once to fetch the jars.")

    @field_validator("cache_dir", "data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()
