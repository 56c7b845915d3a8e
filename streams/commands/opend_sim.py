"""``capflow opend-sim``: run the OpenD simulator (protocol-compatible with the futu SDK)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import datetime

from streams.commands import CommandFailed, UsageError
from streams.opend.crypto import CryptoError, load_rsa_key
from streams.opend.framing import PROTO_QOT_GET_CAPITAL_DISTRIBUTION, PROTO_QOT_GET_CAPITAL_FLOW
from streams.opend_sim.clock import SimClock
from streams.opend_sim.market import MarketModel
from streams.opend_sim.scenario import (
    DEMO_PATH,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_group_codes,
)
from streams.opend_sim.server import OpenDSimulator
from streams.settings import OpenDSettings, PollerSettings
from streams.settings.flags import add_settings, from_args

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "opend-sim",
        help="run the OpenD simulator",
        description="OpenD simulator: InitConnect, KeepAlive, GetGlobalState, "
        "Qot_GetCapitalDistribution (3212) and Qot_GetCapitalFlow (3211, today's minute "
        "series from the same market model) over the real wire protocol, each quote "
        "protocol with its own rate limit; Qot_GetUserSecurity (3213) from the watchlist "
        "groups of the scenario's user_groups and --user-group; Notify pushes at market "
        "open and close, RSA + AES encryption with --opend-rsa-key, holidays and half days "
        "from the scenario. "
        f"Demo scenario: {DEMO_PATH}",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        default=None,
        help="listen port; repeat for several gateways (default 11111)",
    )
    parser.add_argument(
        "--gateways",
        type=int,
        default=None,
        help="serve this many gateways on consecutive ports from --port, each with its own "
        "budget and request count, sharing one market and clock (default 1)",
    )
    parser.add_argument("--scenario", default="", help="scenario JSON file (default: random walk)")
    parser.add_argument(
        "--seed", type=int, default=None, help="model seed (default: scenario's or 0)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="simulated seconds per wall second; 0 freezes time (default: scenario's or 1)",
    )
    parser.add_argument(
        "--start",
        default="",
        help="simulated start, ISO 8601 with offset (default: scenario's, else now)",
    )
    parser.add_argument(
        "--hold",
        action="store_true",
        help="freeze simulated time until the first capital distribution or flow request",
    )
    parser.add_argument("--keep-alive-interval", type=int, default=10, help="seconds (default 10)")
    parser.add_argument(
        "--rate-limit-scope",
        choices=("account", "connection"),
        default="account",
        help="share each quota across connections like one OpenD account (default) or not",
    )
    parser.add_argument(
        "--no-quote-right",
        default="",
        help="comma-separated markets the simulated account has no quote right for, e.g. US",
    )
    parser.add_argument(
        "--keep-alive-misses",
        type=int,
        default=3,
        help="close a connection silent (no KeepAlive) for this many intervals (default 3)",
    )
    parser.add_argument(
        "--user-group",
        action="append",
        default=[],
        metavar="NAME=CODES",
        help="a watchlist group of the simulated account, e.g. Tech=HK.00700,US.AAPL, served "
        "by Qot_GetUserSecurity (3213); repeat for several; overrides a scenario group of "
        "that name",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    add_settings(
        parser,
        PollerSettings,
        only=[
            "rate_limit_requests",
            "rate_limit_window",
            "flow_rate_limit_requests",
            "flow_rate_limit_window",
        ],
    )
    add_settings(parser, OpenDSettings, only=["rsa_key"])
    parser.set_defaults(func=run)


def gateway_ports(args: argparse.Namespace) -> list[int]:
    """The ports to serve: every --port given, or --gateways consecutive ones from --port."""
    ports: list[int] = list(args.port or [11111])
    count = args.gateways
    if count is not None:
        if count < 1:
            raise ValueError(f"--gateways must be >= 1, got {count}")
        if len(ports) > 1:
            raise ValueError("give either several --port or --gateways N, not both")
        if ports[0] == 0 and count > 1:
            raise ValueError("--gateways N needs a fixed first --port (not 0)")
        ports = [ports[0] + i for i in range(count)]
    if len(set(ports)) != len(ports):
        raise ValueError(f"a port is listed twice: {ports}")
    for port in ports:
        if not 0 <= port < 65536:
            raise ValueError(f"port {port} is outside 0..65535")
    return ports


def user_groups(specs: list[str]) -> dict[str, tuple[str, ...]]:
    """``--user-group NAME=CODES`` flags as name -> codes; ScenarioError for a bad one."""
    groups: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        name, eq, codes = spec.partition("=")
        if not eq or not name.strip():
            raise ScenarioError(f"--user-group {spec!r}: expected NAME=CODE,CODE,...")
        listed = [c.strip() for c in codes.split(",") if c.strip()]
        groups[name.strip()] = parse_group_codes(listed, f"--user-group {name.strip()}")
    return groups


def build_simulators(args: argparse.Namespace) -> list[OpenDSimulator]:
    """One simulator per gateway port: one market model, calendar and clock; separate
    budgets and counts; the same key and quote rights (one OpenD setup per account)."""
    ports = gateway_ports(args)
    first = build_simulator(args, port=ports[0])
    sims = [first]
    for port in ports[1:]:
        sim = OpenDSimulator(
            first.market,
            first.clock,
            host=args.host,
            port=port,
            rate_limit_requests=first.rate_limit_requests,
            rate_limit_window=first.rate_limit_window,
            rate_limit_scope=args.rate_limit_scope,
            flow_rate_limit_requests=first.flow_rate_limit_requests,
            flow_rate_limit_window=first.flow_rate_limit_window,
            keep_alive_interval=args.keep_alive_interval,
            keep_alive_misses=first.keep_alive_misses,
            rsa_key=first.rsa_key,  # --opend-rsa-key applies to every gateway
            no_quote_right=first.no_quote_right,
        )
        sim.user_groups = first.user_groups  # one account setup: the same groups, live
        sim.speed_on_first_request = first.speed_on_first_request
        sims.append(sim)
    return sims


def build_simulator(args: argparse.Namespace, port: int | None = None) -> OpenDSimulator:
    """The simulator the flags describe (also used by other commands, e.g. demo)."""
    scenario: Scenario | None = load_scenario(args.scenario) if args.scenario else None
    if args.start:
        start: float | None = datetime.fromisoformat(args.start).timestamp()
    else:
        start = scenario.start if scenario else None
    speed = args.speed if args.speed is not None else (scenario.speed if scenario else None)
    seed = args.seed if args.seed is not None else (scenario.seed if scenario else None)
    run_speed = 1.0 if speed is None else speed
    limits, key_file = from_args(args, PollerSettings), from_args(args, OpenDSettings).rsa_key
    sim = OpenDSimulator(
        MarketModel(scenario, seed or 0),
        SimClock(start, 0.0 if getattr(args, "hold", False) else run_speed),
        host=args.host,
        port=port if port is not None else gateway_ports(args)[0],
        rate_limit_requests=limits.rate_limit_requests,
        rate_limit_window=limits.rate_limit_window,
        rate_limit_scope=args.rate_limit_scope,
        flow_rate_limit_requests=limits.flow_rate_limit_requests,
        flow_rate_limit_window=limits.flow_rate_limit_window,
        keep_alive_interval=args.keep_alive_interval,
        keep_alive_misses=getattr(args, "keep_alive_misses", 3),
        rsa_key=load_rsa_key(key_file) if key_file else None,
        no_quote_right=frozenset(
            m.strip().upper() for m in getattr(args, "no_quote_right", "").split(",") if m.strip()
        ),
        user_groups=user_groups(getattr(args, "user_group", [])),
    )
    if getattr(args, "hold", False):
        sim.speed_on_first_request = run_speed
    return sim


async def _serve(sims: list[OpenDSimulator]) -> None:
    for sim in sims:
        await sim.start()
    first = sims[0]
    scenario = first.market.scenario
    start = datetime.fromtimestamp(first.clock.now()).astimezone().isoformat(timespec="seconds")
    for i, sim in enumerate(sims):
        print(
            f"opend-sim{f' gateway {i}' if len(sims) > 1 else ''} listening on "
            f"{sim.host}:{sim.port} "
            f"(scenario={scenario.name if scenario and scenario.name else 'none'}, "
            f"seed={sim.market.seed}, speed={sim.clock.speed:g}, simulated time={start}, "
            f"limit={sim.rate_limit_requests}/{sim.rate_limit_window:g}s, "
            f"flow limit={sim.flow_rate_limit_requests}/{sim.flow_rate_limit_window:g}s, "
            f"encryption={'rsa+aes' if sim.rsa_key is not None else 'none'}, "
            f"watchlist groups={','.join(sim.user_groups) or 'none'})",
            flush=True,
        )
    try:
        await asyncio.gather(*(sim.serve_forever() for sim in sims))
    finally:
        for sim in sims:
            await sim.stop()
            log.info(
                "gateway %s:%s answered %d capital distribution and %d capital flow requests",
                sim.host,
                sim.port,
                sim.counts[PROTO_QOT_GET_CAPITAL_DISTRIBUTION],
                sim.counts[PROTO_QOT_GET_CAPITAL_FLOW],
            )


def run(args: argparse.Namespace) -> int:
    """Serve every gateway until interrupted; bad flags or a scenario are usage errors."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        sims = build_simulators(args)
    except (ScenarioError, CryptoError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        asyncio.run(_serve(sims))
    except OSError as exc:
        ports = ",".join(str(p) for p in gateway_ports(args))
        raise CommandFailed(f"cannot listen on {args.host}:{ports}: {exc}") from exc
    return 0
