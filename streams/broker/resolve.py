"""Fetch the Apache Kafka broker jars from Maven Central with ``mvn``, once per version.

The broker is the ordinary ``org.apache.kafka:kafka_2.13`` artifact plus a log4j2
backend; Maven resolves its runtime dependencies into a cache directory that later
runs reuse, so only the first start needs the network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

DEFAULT_KAFKA_VERSION = "4.1.1"
DEFAULT_CACHE_DIR = "~/.cache/capflow"
LOG4J_VERSION = "2.24.3"
_COMPLETE = ".complete"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>capflow.local</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


class BrokerSetupError(RuntimeError):
    """The local broker cannot be prepared: a missing tool or a failed download."""


def java_major_version(java: str = "java") -> int:
    """Major version of the ``java`` on PATH (17 for "17.0.15"); raises if absent."""
    exe = shutil.which(java)
    if exe is None:
        raise BrokerSetupError(
            "Java 17 or newer is needed to run the local Kafka broker and `java` is not on "
            "PATH. Install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or run "
            "scripts/bootstrap.sh, or point CAPFLOW_KAFKA_BOOTSTRAP at an existing broker."
        )
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise BrokerSetupError(f"cannot read the Java version from: {out.stderr.strip()!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java(minimum: int = 17) -> None:
    major = java_major_version()
    if major < minimum:
        raise BrokerSetupError(
            f"Kafka 4 needs Java {minimum}+, found Java {major}. Install openjdk-17 or newer."
        )


def resolve_jars(
    version: str = DEFAULT_KAFKA_VERSION, log: bool = True, cache_dir: str = DEFAULT_CACHE_DIR
) -> Path:
    """Directory holding every jar the broker needs; downloads with mvn on first use."""
    libs = Path(cache_dir).expanduser() / f"kafka-{version}" / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerSetupError(
            "Maven (`mvn`) is needed once to download the Kafka broker jars from Maven Central "
            "and is not on PATH. Install it (Debian/Ubuntu: apt-get install maven) or run "
            "scripts/bootstrap.sh."
        )
    if log:
        print(
            f"capflow: resolving org.apache.kafka:kafka_2.13:{version} with mvn into {libs} "
            "(first run only) ...",
            flush=True,
        )
    libs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="capflow-mvn-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BrokerSetupError(f"mvn could not resolve kafka_2.13:{version}:\n{tail}")
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise BrokerSetupError(f"mvn finished but no kafka_2.13 jar is in {libs}")
    (libs / _COMPLETE).write_text(version + "\n")
    return libs
