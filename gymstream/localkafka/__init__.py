"""A local Apache Kafka (KRaft) for development and tests, run from jars that Maven fetches once.

``fetch_jars()`` fills a per-user cache; ``start_cluster(data_dir, brokers, port)`` formats (once)
and starts 1..9 combined broker+controller nodes as background processes and returns a
:class:`Cluster`; ``stop_cluster(data_dir)`` and ``status(data_dir)`` work from any process.
Needs Java 17+ (and Maven for the first fetch); every failure raises
:class:`gymstream.errors.KafkaSetupError` with a message that says what to do.
"""

from gymstream.localkafka.cluster import (
    Cluster,
    ClusterStatus,
    NodeStatus,
    remove_cluster,
    start_cluster,
    status,
    stop_cluster,
)
from gymstream.localkafka.config import find_free_base_port
from gymstream.localkafka.jars import KAFKA_VERSION, check_java, fetch_jars, jars_ready

__all__ = [
    "KAFKA_VERSION",
    "Cluster",
    "ClusterStatus",
    "NodeStatus",
    "check_java",
    "fetch_jars",
    "find_free_base_port",
    "jars_ready",
    "remove_cluster",
    "start_cluster",
    "status",
    "stop_cluster",
]
