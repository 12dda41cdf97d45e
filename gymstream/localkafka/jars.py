"""Get the Kafka broker's jars once (Maven) into a cache outside the repo, and check for Java 17+.

The cache holds ``<cache_dir>/kafka-<KAFKA_VERSION>/libs/*.jar`` plus a marker file written only
after a complete copy; the marker records the pom's hash and the jar names, so a later call checks
files and never touches the network, and a changed pom (new version) fetches again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from gymstream.errors import KafkaSetupError
from gymstream.localkafka.lock import file_lock

__all__ = [
    "KAFKA_VERSION",
    "MIN_JAVA",
    "check_java",
    "default_cache_dir",
    "fetch_jars",
    "jars_ready",
    "parse_java_version",
]

KAFKA_VERSION = "4.1.1"
"""Must equal ``kafka.version`` in pom.xml (a unit test checks it)."""

MIN_JAVA = 17
_MARKER = "libs.complete"
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


def default_cache_dir() -> Path:
    """``~/.cache/gymstream``: shared by every checkout and venv of this user."""
    return Path.home() / ".cache" / "gymstream"


def _pom_text() -> str:
    return resources.files("gymstream.localkafka").joinpath("pom.xml").read_text("utf-8")


def _version_dir(cache_dir: Path | None) -> Path:
    return (cache_dir or default_cache_dir()).expanduser() / f"kafka-{KAFKA_VERSION}"


def jars_ready(cache_dir: Path | None = None) -> Path | None:
    """The libs folder if a complete copy for this pom is cached, else None. No network."""
    version_dir = _version_dir(cache_dir)
    libs = version_dir / "libs"
    try:
        marker = json.loads((version_dir / _MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    pom_sha = hashlib.sha256(_pom_text().encode()).hexdigest()
    if not isinstance(marker, dict) or marker.get("pom_sha256") != pom_sha:
        return None
    jars = marker.get("jars")
    if not isinstance(jars, list) or not jars:
        return None
    if all((libs / str(name)).is_file() for name in jars):
        return libs
    return None


def fetch_jars(
    cache_dir: Path | None = None, *, mvn: str = "mvn", timeout_s: float = 900.0
) -> Path:
    """Return the folder of Kafka jars, running Maven only when the cache lacks a complete copy.

    ``cache_dir`` defaults to :func:`default_cache_dir`. Safe to call from several processes at
    once (a file lock serialises the download). Raises KafkaSetupError if Maven is missing or fails.
    """
    ready = jars_ready(cache_dir)
    if ready is not None:
        return ready
    version_dir = _version_dir(cache_dir)
    with file_lock(version_dir / ".lock"):
        ready = jars_ready(cache_dir)  # another process may have fetched while we waited
        if ready is not None:
            return ready
        return _download(version_dir, mvn, timeout_s)


def _download(version_dir: Path, mvn: str, timeout_s: float) -> Path:
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise KafkaSetupError(
            f"Maven ({mvn}) not found: install Maven 3.6+ (Debian/Ubuntu: apt-get install maven); "
            f"it runs once to download the Kafka {KAFKA_VERSION} jars into {version_dir}"
        )
    pom_text = _pom_text()
    (version_dir / "pom.xml").write_text(pom_text, "utf-8")
    staging = version_dir / "libs.partial"
    libs = version_dir / "libs"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn_path,
        "-q",
        "-B",
        "--no-transfer-progress",
        "-f",
        str(version_dir / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    try:
        done = subprocess.run(
            cmd, cwd=version_dir, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaSetupError(
            f"Maven did not finish downloading the Kafka jars within {timeout_s:.0f} s: "
            "check the network or proxy settings (~/.m2/settings.xml) and retry"
        ) from exc
    jars = sorted(p.name for p in staging.glob("*.jar")) if staging.is_dir() else []
    if done.returncode != 0 or not jars:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise KafkaSetupError(
            f"Maven failed to download the Kafka {KAFKA_VERSION} jars (exit {done.returncode}); "
            f"run `{' '.join(cmd)}` to see why\n{tail}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker = {"pom_sha256": hashlib.sha256(pom_text.encode()).hexdigest(), "jars": jars}
    tmp = version_dir / f"{_MARKER}.tmp"
    tmp.write_text(json.dumps(marker, indent=1), "utf-8")
    tmp.replace(version_dir / _MARKER)
    return libs


def parse_java_version(text: str) -> int:
    """The major version from ``java -version`` output ("1.8.0_292" is 8, "17.0.15" is 17)."""
    match = _JAVA_VERSION.search(text)
    if match is None:
        raise ValueError(f"no version found in {text.strip()[:200]!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def check_java(java: str = "java") -> str:
    """Return the path of a Java 17+ executable, or raise KafkaSetupError saying what to install."""
    install = "install a JDK 17+ (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)"
    java_path = shutil.which(java)
    if java_path is None:
        raise KafkaSetupError(f"Java ({java}) not found on PATH: {install}")
    try:
        done = subprocess.run(
            [java_path, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
        major = parse_java_version(done.stderr + done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise KafkaSetupError(f"could not run `{java_path} -version` ({exc}): {install}") from exc
    if major < MIN_JAVA:
        raise KafkaSetupError(
            f"{java_path} is Java {major}, Kafka {KAFKA_VERSION} needs {MIN_JAVA}+: {install} "
            "and put it first on PATH"
        )
    return java_path
