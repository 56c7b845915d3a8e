"""The OpenD gateways a deployment polls: ``host:port[=label]`` entries, checked at start.

Each gateway is one OpenD logged in with its own account, so each has its own
30-per-30-s budget. The order of the list matters: gateway k is partition k of the
control topic, so every worker of a group must be given the same list.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


class GatewayConfigError(ValueError):
    """The gateway list cannot be used as given (a usage error: exit 2)."""


@dataclass(frozen=True)
class Gateway:
    """One OpenD: its place in the list (the control partition), address and label."""

    index: int
    host: str
    port: int
    label: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _parse_entry(index: int, entry: str) -> Gateway:
    address, _, label = entry.partition("=")
    address, label = address.strip(), label.strip()
    if address.startswith("["):  # [::1]:11111
        host, sep, port_text = address[1:].partition("]:")
    else:
        host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text:
        raise GatewayConfigError(f"gateway {entry!r}: expected host:port or host:port=label")
    try:
        port = int(port_text)
    except ValueError:
        raise GatewayConfigError(f"gateway {entry!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise GatewayConfigError(f"gateway {entry!r}: port {port} is outside 1..65535")
    if "=" in entry and not label:
        raise GatewayConfigError(f"gateway {entry!r}: the label after '=' is empty")
    label = label or f"{host}:{port}"
    if not _LABEL.match(label):
        raise GatewayConfigError(
            f"gateway {entry!r}: label {label!r} must be 1-63 letters, digits, '_', '.', ':', '-'"
        )
    return Gateway(index, host, port, label)


def parse_gateways(spec: str) -> list[Gateway]:
    """``127.0.0.1:11111=acct1,127.0.0.1:11112=acct2`` -> gateways; every error named."""
    entries = [part.strip() for part in spec.split(",")]
    if not any(entries):
        raise GatewayConfigError("no gateway given: expected host:port[=label],...")
    if "" in entries:
        raise GatewayConfigError(f"empty entry in gateway list {spec!r}")
    gateways = [_parse_entry(i, entry) for i, entry in enumerate(entries)]
    seen_address: dict[tuple[str, int], str] = {}
    seen_label: set[str] = set()
    for gw in gateways:
        key = (gw.host.lower(), gw.port)
        if key in seen_address:
            raise GatewayConfigError(
                f"gateway {gw.address} is listed twice ({seen_address[key]} and {gw.label}): "
                "one OpenD account has one budget, polling it twice would exceed it"
            )
        if gw.label in seen_label:
            raise GatewayConfigError(f"gateway label {gw.label!r} is used twice")
        seen_address[key] = gw.label
        seen_label.add(gw.label)
    return gateways


def gateways_from_args(opend: str, host: str, port: int) -> list[Gateway]:
    """``--opend`` when given, else the one gateway of ``--opend-host``/``--opend-port``."""
    if opend.strip():
        return parse_gateways(opend)
    return parse_gateways(f"{host}:{port}")


_NO_SUCH_NAME = {
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL")
    if hasattr(socket, name)
}


def check_resolvable(gateways: list[Gateway]) -> None:
    """A host name that does not exist is a configuration error, not an outage (a DNS
    server that does not answer right now is an outage: the gateway counts as down)."""
    for gw in gateways:
        try:
            socket.getaddrinfo(gw.host, gw.port, type=socket.SOCK_STREAM)
        except UnicodeError as exc:
            raise GatewayConfigError(
                f"gateway {gw.label} ({gw.address}): host {gw.host!r} is not a valid name: {exc}"
            ) from None
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_NAME:
                raise GatewayConfigError(
                    f"gateway {gw.label} ({gw.address}): host {gw.host!r} does not resolve: "
                    f"{exc.strerror}"
                ) from None


def probe(gw: Gateway, timeout: float = 2.0) -> str | None:
    """None when the gateway accepts a TCP connection, else why not (for a start-up warning)."""
    try:
        with socket.create_connection((gw.host, gw.port), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc) or type(exc).__name__
