"""Run a command's coroutine on the configured event loop; known failures (gymstream's own,
Kafka's, an interrupt) become one line and an exit code."""

from __future__ import annotations

import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

from gymstream import eventloop
from gymstream.cli.console import fail
from gymstream.errors import GymstreamError
from gymstream.settings import EventLoopSettings

__all__ = ["run"]

T = TypeVar("T")


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
