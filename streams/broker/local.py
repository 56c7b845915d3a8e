"""Start, stop and inspect one local Kafka broker (KRaft, broker+controller in one JVM).

Everything the broker owns lives in one directory: ``server.properties``, the
log dirs, ``broker.log`` and ``broker.json`` (pid, ports). ``stop`` signals only
the pid recorded there, after checking that it is still our java process.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.broker.resolve import (
    DEFAULT_CACHE_DIR,
    DEFAULT_KAFKA_VERSION,
    BrokerSetupError,
    require_java,
    resolve_jars,
)

_PROPERTIES = """# written by capflow kafka start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={log_dirs}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
"""

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRefs = stdout
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


DEFAULT_PORT = 19092  # the controller listens on the next port
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
LISTENER_PROTOCOLS = ("SSL", "SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class Listener:
    """An extra client listener; its security protocol is also its listener name.

    SASL listeners accept the SCRAM mechanism of the broker (credentials are created
    when the storage is formatted); SSL listeners take their keystore from the
    ``ssl.*`` properties given to ``LocalKafka``.
    """

    protocol: str  # SSL, SASL_PLAINTEXT or SASL_SSL
    port: int

    def __post_init__(self) -> None:
        if self.protocol not in LISTENER_PROTOCOLS:
            raise ValueError(f"listener protocol must be one of {LISTENER_PROTOCOLS}")


_SCRAM_FORBIDDEN = frozenset(",[]=\"'\\ ")


def _scram_value(text: str, what: str) -> str:
    """Names and passwords go inside kafka-storage's [name=..,password=..]: no separators."""
    if not text or any(ch in text for ch in _SCRAM_FORBIDDEN) or text != text.strip():
        raise ValueError(f"SCRAM {what} must be non-empty without , [ ] = quotes or spaces")
    return text


@dataclass(frozen=True)
class BrokerInfo:
    """What ``broker.json`` records about a started broker."""

    pid: int
    host: str
    port: int
    controller_port: int
    version: str
    log: str

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes one: urlsafe base64 of a random UUID, 22 chars.

    Like Kafka's own ``Uuid.randomUuid`` it never starts with '-' (one UUID in 64
    would), so the id is also safe for tools that take it as a separate argument.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_pairs(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` free ports whose successors are free too (a broker's port and its
    controller's), none overlapping another's pair."""
    ports: list[int] = []
    for _ in range(50 * count):
        port = free_port(host)
        taken = {p + d for p in ports for d in (-1, 0, 1)}
        if port < 65535 and port not in taken and not port_open(host, port + 1):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free pairs of ports for a broker")


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A free port whose successor is free too: the broker's and its controller's."""
    return free_port_pairs(1, host)[0]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


def _is_our_broker(pid: int, properties: Path) -> bool:
    """True when pid is a live kafka.Kafka JVM started with our properties file."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return b"kafka.Kafka" in cmdline and str(properties).encode() in cmdline


async def metadata_ready(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when the broker answers a metadata request."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def metadata_ready_sync(bootstrap: str) -> bool:
    """``metadata_ready`` from synchronous code, also when an event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(metadata_ready(bootstrap))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, metadata_ready(bootstrap)).result()


class LocalKafka:
    """One broker whose files all live under ``root``."""

    def __init__(
        self,
        root: Path,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        version: str = DEFAULT_KAFKA_VERSION,
        heap: str = "512m",
        *,
        cache_dir: str = DEFAULT_CACHE_DIR,
        listeners: Sequence[Listener] = (),
        properties: Mapping[str, str] | None = None,
        scram_users: Mapping[str, str] | None = None,
        scram_mechanism: str = "SCRAM-SHA-256",
    ) -> None:
        """``listeners``, ``properties`` and ``scram_users`` add to the PLAINTEXT broker.

        The PLAINTEXT listener on ``port`` stays (the broker's own and the readiness
        check's); extra properties come last, so they may override the defaults.
        """
        self.root = Path(root).resolve()
        self.host = host
        self.port = port
        self.version = version
        self.cache_dir = cache_dir
        self.heap = heap
        self.listeners = tuple(listeners)
        if len({lst.protocol for lst in self.listeners}) != len(self.listeners):
            raise ValueError("at most one extra listener per security protocol")
        self.extra_properties = dict(properties or {})
        self.scram_users = {
            _scram_value(user, "user name"): _scram_value(pw, "password")
            for user, pw in (scram_users or {}).items()
        }
        self.scram_mechanism = scram_mechanism

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def info_file(self) -> Path:
        return self.root / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.root / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def listener_bootstrap(self, protocol: str) -> str:
        """The bootstrap address of the extra listener speaking ``protocol``."""
        for lst in self.listeners:
            if lst.protocol == protocol:
                return f"{self.host}:{lst.port}"
        raise KeyError(f"no {protocol} listener")

    def _listener_properties(self) -> str:
        """Property lines for the extra listeners; empty for a PLAINTEXT-only broker."""
        if not self.listeners:
            return ""
        names = ",".join(f"{lst.protocol}://{self.host}:{lst.port}" for lst in self.listeners)
        protocols = ",".join(f"{lst.protocol}:{lst.protocol}" for lst in self.listeners)
        lines = [
            f"listeners=PLAINTEXT://{self.host}:{self.port},"
            f"CONTROLLER://{self.host}:{self.port + 1},{names}",
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port},{names}",
            f"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,{protocols}",
        ]
        sasl = [lst for lst in self.listeners if lst.protocol.startswith("SASL")]
        if sasl:
            lines.append(f"sasl.enabled.mechanisms={self.scram_mechanism}")
            for lst in sasl:
                prefix = f"listener.name.{lst.protocol.lower()}.{self.scram_mechanism.lower()}"
                lines.append(f"{prefix}.sasl.jaas.config={SCRAM_LOGIN}")
        return "\n".join(lines) + "\n"

    def info(self) -> BrokerInfo | None:
        """The recorded broker, if its process is still ours and alive."""
        try:
            data = json.loads(self.info_file.read_text())
            info = BrokerInfo(**data)
        except (OSError, ValueError, TypeError):
            return None
        return info if _is_our_broker(info.pid, self.properties) else None

    def _write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        extra = "".join(f"{key}={value}\n" for key, value in self.extra_properties.items())
        self.properties.write_text(
            _PROPERTIES.format(
                host=self.host,
                port=self.port,
                controller_port=self.port + 1,
                log_dirs=self.root / "data",
            )
            + self._listener_properties()
            + extra
        )
        (self.root / "log4j2.properties").write_text(_LOG4J2)

    def _java_cmd(self, main: str, *args: str) -> list[str]:
        libs = resolve_jars(self.version, cache_dir=self.cache_dir)
        classpath = os.pathsep.join(str(p) for p in sorted(libs.glob("*.jar")))
        return [
            "java",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
            "-cp",
            classpath,
            main,
            *args,
        ]

    def _format_storage(self, cluster_id: str | None = None) -> None:
        if (self.root / "data" / "meta.properties").exists():
            return
        # "--cluster-id=ID" in one argument: an id that starts with '-' cannot be read
        # as a flag by the storage tool's parser.
        scram: list[str] = []
        for user, password in self.scram_users.items():
            scram += ["--add-scram", f"{self.scram_mechanism}=[name={user},password={password}]"]
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id or new_cluster_id()}",
            "--config",
            str(self.properties),
            *scram,
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerSetupError(f"formatting Kafka storage failed:\n{proc.stdout}{proc.stderr}")

    def start(self, wait: float = 90.0, progress: bool = True) -> BrokerInfo:
        """Start the broker (or return the running one) and wait until it serves metadata."""
        running = self.info()
        if running is not None:
            return running
        require_java(17)
        for port in (self.port, self.port + 1, *(lst.port for lst in self.listeners)):
            if port_open(self.host, port):
                raise BrokerSetupError(
                    f"port {self.host}:{port} is already in use by another process; "
                    "choose another with --port or CAPFLOW_KAFKA_PORT"
                )
        self._write_config()
        self._format_storage()
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                self._java_cmd("kafka.Kafka", str(self.properties)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        info = BrokerInfo(
            pid=proc.pid,
            host=self.host,
            port=self.port,
            controller_port=self.port + 1,
            version=self.version,
            log=str(self.log_file),
        )
        self.info_file.write_text(json.dumps(asdict(info), indent=2) + "\n")
        deadline = time.monotonic() + wait
        last_note = 0.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
                raise BrokerSetupError(f"Kafka exited with code {proc.returncode}:\n{tail}")
            if port_open(self.host, self.port) and metadata_ready_sync(self.bootstrap):
                return info
            if progress and time.monotonic() - last_note > 5:
                print(f"capflow: waiting for Kafka on {self.bootstrap} ...", flush=True)
                last_note = time.monotonic()
            time.sleep(0.3)
        self.stop()
        raise BrokerSetupError(f"Kafka did not answer within {wait:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our broker; True if one was running. Leaves data for the next start."""
        info = self.info()
        if info is None:
            self.info_file.unlink(missing_ok=True)
            return False
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(info.pid):
            time.sleep(0.2)
        if _pid_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.pid, os.WNOHANG)
        self.info_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the broker: for fault tests of an abrupt broker loss."""
        info = self.info()
        if info is not None:
            os.kill(info.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.pid, 0)
