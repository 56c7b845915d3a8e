"""A real broker with SASL_PLAINTEXT (SCRAM-SHA-256) and SSL listeners, for security tests.

Certificates are made with Java's keytool: a throw-away CA signs the broker's key
for 127.0.0.1 and localhost; clients trust the CA's PEM through CAPFLOW_KAFKA_SSL_CAFILE.
The broker runs Kafka's StandardAuthorizer: ``alice`` is a super user, ``bob`` has a
valid login but no ACLs, so every topic is refused to him.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aiokafka.conn import create_conn
from aiokafka.protocol.admin import CreateAclsRequest

from streams.broker.local import Listener, LocalKafka, free_port_pairs

STORE_PASSWORD = "capflow-test-store"
ALICE = ("alice", "alice-pw-5d1f")  # super user
BOB = ("bob", "bob-pw-8e2a")  # authenticated, authorized for nothing


def _keytool(*args: str) -> None:
    proc = subprocess.run(["keytool", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"keytool {args[0]} failed:\n{proc.stdout}{proc.stderr}")


@dataclass(frozen=True)
class Certificates:
    keystore: Path  # PKCS12: the broker's key and its chain
    ca_pem: Path  # what clients trust


def make_certificates(directory: Path) -> Certificates:
    """A CA and a broker certificate signed by it, valid for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, broker = directory / "ca.p12", directory / "broker.p12"
    ca_pem, csr, crt = directory / "ca.pem", directory / "broker.csr", directory / "broker.pem"
    common = ["-storetype", "PKCS12", "-storepass", STORE_PASSWORD, "-keypass", STORE_PASSWORD]
    san = f"SAN=ip:127.0.0.1,dns:localhost,dns:{socket.gethostname()}"
    _keytool(
        "-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2",
        "-dname", "CN=capflow test CA", "-ext", "bc:c", "-keystore", str(ca), *common,
    )  # fmt: skip
    _keytool(
        "-exportcert", "-rfc", "-alias", "ca", "-file", str(ca_pem), "-keystore", str(ca),
        "-storetype", "PKCS12", "-storepass", STORE_PASSWORD,
    )  # fmt: skip
    _keytool(
        "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
        "-validity", "2", "-dname", "CN=localhost", "-keystore", str(broker), *common,
    )  # fmt: skip
    _keytool(
        "-certreq", "-alias", "broker", "-file", str(csr), "-keystore", str(broker), *common,
    )  # fmt: skip
    _keytool(
        "-gencert", "-rfc", "-alias", "ca", "-infile", str(csr), "-outfile", str(crt),
        "-validity", "2", "-ext", san, "-ext", "ku:c=digitalSignature,keyEncipherment",
        "-ext", "eku=serverAuth", "-keystore", str(ca), *common,
    )  # fmt: skip
    _keytool(
        "-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
        "-keystore", str(broker), *common,
    )  # fmt: skip
    _keytool(
        "-importcert", "-noprompt", "-alias", "broker", "-file", str(crt),
        "-keystore", str(broker), *common,
    )  # fmt: skip
    return Certificates(broker, ca_pem)


def secure_broker(root: Path) -> tuple[LocalKafka, Certificates]:
    """A broker (not started) with PLAINTEXT, SASL_PLAINTEXT and SSL listeners."""
    certs = make_certificates(root / "tls")
    plain, sasl, tls = free_port_pairs(3)
    broker = LocalKafka(
        root / "kafka",
        port=plain,
        listeners=[Listener("SASL_PLAINTEXT", sasl), Listener("SSL", tls)],
        scram_users=dict([ALICE, BOB]),
        properties={
            "ssl.keystore.location": str(certs.keystore),
            "ssl.keystore.password": STORE_PASSWORD,
            "ssl.key.password": STORE_PASSWORD,
            "ssl.keystore.type": "PKCS12",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # PLAINTEXT (the broker itself, test readers) and certificate-less SSL clients
            # are ANONYMOUS; alice logs in over SASL.
            "super.users": f"User:ANONYMOUS;User:{ALICE[0]}",
        },
    )
    return broker, certs


async def allow_prefix(broker: LocalKafka, user: str, prefix: str) -> None:
    """Grant ``user`` every operation on topics starting with ``prefix`` (CreateAcls).

    Sent over the PLAINTEXT listener, whose ANONYMOUS principal is a super user.
    """
    conn = await create_conn(broker.host, broker.port)
    try:
        # TOPIC=2, PREFIXED=4, ALL=2, ALLOW=3
        request = CreateAclsRequest(2, prefix, 4, f"User:{user}", "*", 2, 3)
        response = await conn.send(request)
    finally:
        conn.close()
    errors = [(code, msg) for code, msg in response.creation_responses if code]
    if errors:
        raise RuntimeError(f"CreateAcls failed: {errors}")
