"""The largest task message a topic takes: asked of the broker once per topic.

Kafka refuses a record larger than the topic's ``max.message.bytes`` (and aiokafka one larger
than the producer's ``max_request_size``) with ``MessageSizeTooLargeError``, which used to abort
``produce`` after the rows before it were sent, with no file or line. The producer asks here
before the first task of each topic and rejects a row whose task would not fit, as bad input.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from gymstream.errors import ConfigError
from gymstream.kafka.clients import client_options
from gymstream.settings import KafkaSettings

__all__ = ["RECORD_OVERHEAD_BYTES", "topic_max_message_bytes"]

RECORD_OVERHEAD_BYTES = 512
"""Room left for the record batch header, the record's framing and its key beside the value
(Kafka counts them all against ``max.message.bytes``; ~70 bytes plus the key in practice)."""


async def topic_max_message_bytes(kafka: KafkaSettings, topic: str, *, client_limit: int) -> int:
    """The largest value (bytes) a record on ``topic`` may carry: the topic's
    ``max.message.bytes`` or the producer's ``client_limit``, whichever is smaller, less
    ``RECORD_OVERHEAD_BYTES``. ConfigError when the broker does not say."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    try:
        await admin.start()
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        described = await asyncio.wait_for(
            admin.describe_configs([resource]), kafka.request_timeout_ms / 1000
        )
    except (KafkaError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot read max.message.bytes of topic {topic} ({type(exc).__name__}: {exc}); "
            "check that the broker is reachable and the topic exists (`gymstream topics apply`)"
        ) from exc
    finally:
        await admin.close()
    # resources: (error_code, error_message, resource_type, resource_name, configs)
    configs = {c[0]: c[1] for r in described for res in r.resources for c in res[4]}
    value = configs.get("max.message.bytes")
    if value is None:
        raise ConfigError(f"the broker did not report max.message.bytes of topic {topic}")
    return min(int(value), client_limit) - RECORD_OVERHEAD_BYTES
