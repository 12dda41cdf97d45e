"""The local cluster's self-signed TLS certificate, made once per data directory with keytool.

keytool ships with every JDK, and Kafka needs a JDK anyway, so no other tool (openssl, a Python
crypto package) is required. Files, in ``<data_dir>/tls/``:

- ``broker.p12``  the brokers' PKCS12 keystore (key and certificate, for 127.0.0.1 and localhost)
- ``ca.pem``      the certificate in PEM: what a client trusts (``GYMSTREAM_KAFKA_SSL_CAFILE``)

Development only: the store password is fixed (:data:`STORE_PASSWORD`).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gymstream.errors import KafkaSetupError

__all__ = ["STORE_PASSWORD", "TlsFiles", "ensure_certificate", "tls_files"]

STORE_PASSWORD = "gymstream-dev-store"  # noqa: S105 (development only, see above)
_VALIDITY_DAYS = "3650"


@dataclass(frozen=True)
class TlsFiles:
    keystore: Path
    ca_pem: Path


def tls_files(data_dir: Path) -> TlsFiles:
    folder = data_dir / "tls"
    return TlsFiles(keystore=folder / "broker.p12", ca_pem=folder / "ca.pem")


def _keytool(java: str) -> str:
    beside_java = Path(java).resolve().parent / "keytool"
    found = str(beside_java) if beside_java.exists() else shutil.which("keytool")
    if found is None:
        raise KafkaSetupError(
            "keytool (part of every JDK) not found next to Java or on PATH: install a full JDK 17+ "
            "(Debian/Ubuntu: apt-get install openjdk-17-jdk-headless) for --security-port"
        )
    return found


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaSetupError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise KafkaSetupError(f"{what} failed (exit {done.returncode}): {' / '.join(tail)}")


def ensure_certificate(data_dir: Path, java: str) -> TlsFiles:
    """The cluster's keystore and CA file, made now if the data directory has none yet."""
    files = tls_files(data_dir)
    if files.keystore.exists() and files.ca_pem.exists():
        return files
    keytool = _keytool(java)
    files.keystore.parent.mkdir(parents=True, exist_ok=True)
    files.keystore.unlink(missing_ok=True)
    store = ["-keystore", str(files.keystore), "-storepass", STORE_PASSWORD]
    _run(
        [
            keytool,
            "-genkeypair",
            "-alias",
            "broker",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-validity",
            _VALIDITY_DAYS,
            "-dname",
            "CN=localhost, O=gymstream local kafka",
            "-ext",
            "SAN=ip:127.0.0.1,dns:localhost",
            "-ext",
            "BC:c=ca:true",
            "-storetype",
            "PKCS12",
            "-keypass",
            STORE_PASSWORD,
            *store,
        ],
        "making the local cluster's TLS certificate (keytool -genkeypair)",
    )
    _run(
        [keytool, "-exportcert", "-rfc", "-alias", "broker", "-file", str(files.ca_pem), *store],
        "exporting the local cluster's TLS certificate (keytool -exportcert)",
    )
    return files
