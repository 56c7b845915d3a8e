"""Gateway list parsing and the spread of securities over the gateways that are up."""

from __future__ import annotations

import math
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.polling import spread
from streams.polling.gateways import (
    Gateway,
    GatewayConfigError,
    check_resolvable,
    gateways_from_args,
    parse_gateways,
)


def test_several_gateways_with_and_without_labels() -> None:
    gws = parse_gateways("127.0.0.1:11111=acct1, opend.local:11112,[::1]:11113=v6")
    assert gws == [
        Gateway(0, "127.0.0.1", 11111, "acct1"),
        Gateway(1, "opend.local", 11112, "opend.local:11112"),
        Gateway(2, "::1", 11113, "v6"),
    ]


def test_host_and_port_flags_are_the_one_gateway_form() -> None:
    assert gateways_from_args("", "10.0.0.5", 11111) == [
        Gateway(0, "10.0.0.5", 11111, "10.0.0.5:11111")
    ]
    assert gateways_from_args("a:1=x", "10.0.0.5", 11111)[0].label == "x"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no gateway given"),
        ("127.0.0.1:11111,,127.0.0.1:11112", "empty entry"),
        ("127.0.0.1", "expected host:port"),
        (":11111", "expected host:port"),
        ("127.0.0.1:abc", "is not a number"),
        ("127.0.0.1:0", "outside 1..65535"),
        ("127.0.0.1:70000", "outside 1..65535"),
        ("127.0.0.1:11111=", "label after '=' is empty"),
        ("127.0.0.1:11111=a b", "must be 1-63"),
        ("127.0.0.1:11111=a,127.0.0.1:11111=b", "listed twice"),
        ("LOCALHOST:11111,localhost:11111", "listed twice"),
        ("127.0.0.1:11111=a,127.0.0.1:11112=a", "used twice"),
    ],
)
def test_bad_gateway_lists_are_named(spec: str, message: str) -> None:
    with pytest.raises(GatewayConfigError, match=message):
        parse_gateways(spec)


def _dns(monkeypatch: pytest.MonkeyPatch, errno: int) -> None:
    """Name resolution as a DNS server would answer for any name ending in .invalid."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".invalid"):
            raise socket.gaierror(errno, "from the fake resolver")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_host_that_does_not_exist_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _dns(monkeypatch, socket.EAI_NONAME)
    with pytest.raises(GatewayConfigError, match="does not resolve"):
        check_resolvable(parse_gateways("no-such-host.invalid:11111"))
    check_resolvable(parse_gateways("127.0.0.1:11111"))  # resolves: no error


def test_a_dns_server_that_does_not_answer_is_an_outage_not_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _dns(monkeypatch, socket.EAI_AGAIN)
    check_resolvable(parse_gateways("later.invalid:11111"))  # no error: counts as down


SECURITIES = [f"HK.{i:05d}" for i in range(300)]
labels = st.lists(
    st.text(alphabet="abcdefgh0123456789", min_size=1, max_size=6),
    min_size=1,
    max_size=6,
    unique=True,
)


@given(labels)
def test_each_security_has_exactly_one_up_gateway(up: list[str]) -> None:
    parts = spread.spread(SECURITIES, up)
    assert sorted(s for part in parts.values() for s in part) == sorted(SECURITIES)
    assert set(parts) == set(up)
    for label in up:
        assert spread.share(SECURITIES, up, label) == parts[label]


@given(labels, st.data())
def test_a_gateway_going_down_moves_only_its_own_securities_and_they_come_back(
    configured: list[str], data: st.DataObject
) -> None:
    down = data.draw(st.sets(st.sampled_from(configured), max_size=len(configured) - 1))
    up = [g for g in configured if g not in down]
    before = _owners(spread.spread(SECURITIES, configured, configured))
    during = _owners(spread.spread(SECURITIES, up, configured))
    for s in SECURITIES:
        if before[s] not in down:
            assert during[s] == before[s]  # untouched while the set changes elsewhere
        else:
            assert during[s] in up
    # Order does not matter, and the return restores the spread exactly.
    back = spread.spread(SECURITIES, list(reversed(configured)), list(reversed(configured)))
    assert _owners(back) == before


@given(labels, st.data())
def test_shares_are_even_whatever_is_down(configured: list[str], data: st.DataObject) -> None:
    down = data.draw(st.sets(st.sampled_from(configured), max_size=len(configured) - 1))
    up = [g for g in configured if g not in down]
    parts = spread.spread(SECURITIES, up, configured)
    # A gateway's staleness is its share: none may exceed an even split of the up set.
    assert max(len(p) for p in parts.values()) == math.ceil(len(SECURITIES) / len(up))
    if not down:
        assert max(map(len, parts.values())) - min(map(len, parts.values())) <= 1


def test_three_gateways_share_300_securities_exactly() -> None:
    securities = [f"HK.{i:05d}" for i in range(1, 301)]
    parts = spread.spread(securities, ["g1", "g2", "g3"])
    assert sorted(len(p) for p in parts.values()) == [100, 100, 100]
    assert [s for s in securities if s in parts["g2"]] == parts["g2"]  # watchlist order


def _owners(parts: dict[str, list[str]]) -> dict[str, str]:
    return {s: label for label, part in parts.items() for s in part}


def test_nothing_is_owned_when_no_gateway_is_up() -> None:
    assert spread.owner("HK.00700", SECURITIES, []) is None
    assert spread.share(SECURITIES, [], "acct1") == []
    assert spread.share(SECURITIES, ["acct2"], "acct1") == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--opend", "127.0.0.1:11111=a,127.0.0.1:11111=b"], "listed twice"),
        (["--opend", "127.0.0.1"], "expected host:port"),
        (["--opend", "no-such-host.invalid:11111"], "does not resolve"),
        (["--watchlist", ""], "watchlist is empty"),
    ],
)
def test_worker_refuses_bad_polling_settings_before_touching_kafka(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams import cli

    _dns(monkeypatch, socket.EAI_NONAME)
    # An unused bootstrap: the check must come before any Kafka connection.
    code = cli.main(["worker", "--kafka-bootstrap", "127.0.0.1:9", *argv])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err and "Traceback" not in captured.err


def test_worker_refuses_an_unknown_schedule_as_bad_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streams import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["worker", "--kafka-bootstrap", "127.0.0.1:9", "--schedule", "nope"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "--schedule" in err and "'nope'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gateways", "0"], "--gateways must be >= 1"),
        (["--port", "11111", "--port", "11112", "--gateways", "2"], "not both"),
        (["--port", "11111", "--port", "11111"], "listed twice"),
        (["--port", "0", "--gateways", "2"], "fixed first --port"),
    ],
)
def test_opend_sim_refuses_bad_gateway_ports(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams import cli

    assert cli.main(["opend-sim", *argv]) == 2
    assert message in capsys.readouterr().err


def test_opend_sim_ports_for_several_gateways() -> None:
    import argparse

    from streams.commands.opend_sim import gateway_ports

    assert gateway_ports(argparse.Namespace(port=[21000], gateways=3)) == [21000, 21001, 21002]
    assert gateway_ports(argparse.Namespace(port=[21000, 21005], gateways=None)) == [21000, 21005]
    assert gateway_ports(argparse.Namespace(port=None, gateways=None)) == [11111]


def test_opend_sim_gateways_share_key_quote_rights_and_calendar(tmp_path: Path) -> None:
    """Every gateway of ``--gateways N`` is the same OpenD setup: key, quote rights, market."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from streams import cli
    from streams.commands.opend_sim import build_simulators

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    key_file = tmp_path / "opend.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    args = cli.build_parser().parse_args(
        ["opend-sim", "--port", "21000", "--gateways", "3", "--opend-rsa-key", str(key_file),
         "--no-quote-right", "US", "--keep-alive-misses", "5"]
    )  # fmt: skip
    sims = build_simulators(args)
    assert [s.port for s in sims] == [21000, 21001, 21002]
    for sim in sims:
        assert sim.rsa_key is not None
        assert sim.rsa_key.private_numbers() == key.private_numbers()
        assert sim.no_quote_right == frozenset({"US"})
        assert sim.keep_alive_misses == 5
        assert sim.market is sims[0].market and sim.clock is sims[0].clock
    # Separate budgets: one gateway's limiter is not another's.
    assert len({id(s._account_limiters[3212]) for s in sims}) == 3
    assert len({id(s._account_limiters[3211]) for s in sims}) == 3
