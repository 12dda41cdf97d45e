"""A local cluster's development security listeners: SASL, TLS and SASL over TLS.

``gymstream kafka start --security-port B`` gives node i three more listeners beside its plaintext
one, so every ``GYMSTREAM_KAFKA_*`` security setting can be tried against a real broker:

=========  =================  ===============  ===========================================
listener   security protocol  port of node i   what it accepts
=========  =================  ===============  ===========================================
SASL       SASL_PLAINTEXT     B + i - 1        PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER
TLS        SSL                B + 10 + i - 1   any client that trusts the cluster's certificate
SASLTLS    SASL_SSL           B + 20 + i - 1   the SASL mechanisms above, inside TLS
=========  =================  ===============  ===========================================

One development user, :data:`DEV_USER` / :data:`DEV_PASSWORD`, exists for PLAIN (in the listener's
JAAS line) and for both SCRAM mechanisms (written into the cluster metadata when the storage is
formatted). OAUTHBEARER uses Kafka's unsecured validator: any unsigned JWT with a ``sub`` passes.
The TLS certificate is self-signed, made once per data directory (see tls.py). None of this is for
production: the password is printed in ``--help`` and the tokens are unsigned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "DEV_PASSWORD",
    "DEV_USER",
    "LISTENER_STRIDE",
    "SASL_MECHANISMS",
    "DevListeners",
    "ListenerKind",
]

DEV_USER = "gymstream"
DEV_PASSWORD = "gymstream-dev-secret"  # noqa: S105 (a published development credential)
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
LISTENER_STRIDE = 10
"""Port distance between the three listeners of one node (more than MAX_BROKERS)."""

ListenerKind = Literal["SASL", "TLS", "SASLTLS"]
_PROTOCOL: dict[ListenerKind, str] = {
    "SASL": "SASL_PLAINTEXT",
    "TLS": "SSL",
    "SASLTLS": "SASL_SSL",
}
_LOGIN = {
    "PLAIN": (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{DEV_USER}="{DEV_PASSWORD}";'
    ),
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    "OAUTHBEARER": (
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
        'unsecuredLoginStringClaim_sub="broker";'
    ),
}


@dataclass(frozen=True)
class DevListeners:
    """The security listeners of a cluster, from node 1's first port (None: plaintext only)."""

    base: int | None = None

    @property
    def enabled(self) -> bool:
        return self.base is not None

    def port(self, kind: ListenerKind, node_id: int) -> int:
        if self.base is None:
            raise ValueError("no security listeners here: start the cluster with --security-port")
        return self.base + list(_PROTOCOL).index(kind) * LISTENER_STRIDE + node_id - 1

    def ports(self, node_id: int) -> list[tuple[str, int]]:
        """(role, port) of each listener of a node, for the free-port check."""
        if self.base is None:
            return []
        return [(f"{kind} listener", self.port(kind, node_id)) for kind in _PROTOCOL]

    def bootstrap(self, kind: ListenerKind, node_ids: list[int], host: str) -> str:
        return ",".join(f"{host}:{self.port(kind, n)}" for n in node_ids)

    @staticmethod
    def security_protocol(kind: ListenerKind) -> str:
        return _PROTOCOL[kind]

    def properties(
        self, node_id: int, host: str, props: dict[str, str], keystore: Path, store_password: str
    ) -> dict[str, str]:
        """The server.properties entries that add the listeners to ``props`` (node ``node_id``)."""
        if self.base is None:
            return {}
        addresses = ",".join(f"{kind}://{host}:{self.port(kind, node_id)}" for kind in _PROTOCOL)
        protocols = ",".join(f"{kind}:{protocol}" for kind, protocol in _PROTOCOL.items())
        protocol_map = props["listener.security.protocol.map"]
        mechanisms = ",".join(SASL_MECHANISMS)
        extra = {
            "listeners": f"{props['listeners']},{addresses}",
            "advertised.listeners": f"{props['advertised.listeners']},{addresses}",
            "listener.security.protocol.map": f"{protocol_map},{protocols}",
            "sasl.enabled.mechanisms": mechanisms,
        }
        for kind in ("SASL", "SASLTLS"):
            prefix = f"listener.name.{kind.lower()}"
            extra[f"{prefix}.sasl.enabled.mechanisms"] = mechanisms
            for mechanism, login in _LOGIN.items():
                extra[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = login
        for kind in ("TLS", "SASLTLS"):
            prefix = f"listener.name.{kind.lower()}"
            extra[f"{prefix}.ssl.keystore.location"] = str(keystore)
            extra[f"{prefix}.ssl.keystore.type"] = "PKCS12"
            extra[f"{prefix}.ssl.keystore.password"] = store_password
            extra[f"{prefix}.ssl.key.password"] = store_password
            extra[f"{prefix}.ssl.client.auth"] = "none"
        return extra

    def format_arguments(self) -> list[str]:
        """kafka-storage format arguments that create the SCRAM user (none without listeners)."""
        if self.base is None:
            return []
        return [
            argument
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for argument in (
                "--add-scram",
                f"{mechanism}=[name={DEV_USER},password={DEV_PASSWORD}]",
            )
        ]
