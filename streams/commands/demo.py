"""``capflow demo``: broker + OpenD simulator + worker + alerts in the terminal, one command.

It starts a local Kafka broker (unless one is already running there), the simulator
with the demo scenario (reversals within a few minutes at the default speed), and a
worker polling it; then it prints alerts as they arrive and a progress line now and
then. Ctrl-C, SIGTERM or ``--duration`` stops everything it started, and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

from streams.broker.local import free_port
from streams.broker.resolve import BrokerSetupError
from streams.commands import CommandFailed
from streams.commands.alerts import FollowParams, follow_alerts
from streams.commands.kafka import add_broker_settings, broker_from_args
from streams.devtools.processes import Child, capflow
from streams.kafka.topics import ensure_topics
from streams.observability.metrics import sample_sum
from streams.opend_sim.scenario import DEMO_PATH, ScenarioError, load_scenario
from streams.settings import WorkerSettings
from streams.settings.flags import from_args
from streams.sinks.console import format_alert

# Client libraries whose log lines are the demo process's own (its alert follower).
LIBRARY_LOGGERS = ("aiokafka", "kafka", "faust", "mode")


def library_logs_to(path: Path) -> logging.Handler:
    """Send the client libraries' log lines to ``path`` instead of the terminal.

    aiokafka logs transient states at WARNING and ERROR ("Failed fetch offsets ...
    NotLeaderForPartitionError" while a fresh topic elects its leaders, coordinator
    moves) and retries them itself; they mean nothing to a demo user. A real failure
    still reaches the terminal: the follower raises, or a child exits and the demo
    prints its log's tail. The children (worker, simulator) write to their own logs.
    """
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return handler


def _stop(child: Child, name: str) -> None:
    if child.running():
        child.stop(20)
        print(f"demo: stopped {name}", flush=True)


def _progress(web_port: int, started: float, alerts: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics/", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return f"demo: {time.monotonic() - started:4.0f}s  worker starting ..."
    polled = sample_sum(text, "capflow_opend_requests_total", 'outcome="ok",protocol="3212"')
    flows = sample_sum(text, "capflow_snapshots_processed_total", 'result="flow"')
    used = sample_sum(text, "capflow_opend_budget", 'kind="used"')
    limit = sample_sum(text, "capflow_opend_budget", 'kind="limit"')
    return (
        f"demo: {time.monotonic() - started:4.0f}s  snapshots polled {polled:.0f}  "
        f"flows {flows:.0f}  budget {used:.0f}/{limit:.0f}  alerts {alerts}"
    )


class DemoFailed(RuntimeError):
    """A process the demo started has exited."""


async def _follow(
    args: argparse.Namespace,
    bootstrap: str,
    topic: str,
    web_port: int,
    procs: list[tuple[str, Child]],
) -> int:
    count = 0
    started = time.monotonic()

    def on_event(event: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        print(format_alert(event), flush=True)

    params = FollowParams(
        kafka={"bootstrap_servers": bootstrap},
        topic=topic,
        from_beginning=True,
        timeout=args.duration or None,
    )
    follower = asyncio.create_task(follow_alerts(params, on_event))
    last = time.monotonic()
    while not follower.done():
        await asyncio.wait({follower}, timeout=1.0)
        for name, child in procs:
            if not child.running():
                follower.cancel()
                raise DemoFailed(
                    f"the {name} exited with code {child.returncode}:\n{child.tail(15)}"
                )
        if not follower.done() and time.monotonic() - last >= args.progress:
            last = time.monotonic()
            print(_progress(web_port, started, count), flush=True)
    return follower.result()


def _stop_on_sigterm() -> None:
    """SIGTERM stops the demo as Ctrl-C does, with everything it started (a supervisor or
    ``timeout`` would otherwise leave the worker, the simulator and the broker running)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread: no handler, as before
        signal.signal(signal.SIGTERM, interrupt)


def run(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise CommandFailed(f"scenario: {exc}") from exc
    data = Path(from_args(args, WorkerSettings).data_dir)
    broker = broker_from_args(args)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    logs = data / "demo" / run_id
    logs.mkdir(parents=True, exist_ok=True)
    library_logs_to(logs / "demo.log")
    watchlist = ",".join(scenario.securities)
    prefix = f"capflow.demo-{run_id}"
    topics = {
        "--topic-distribution": f"{prefix}.distribution.v1",
        "--topic-flow": f"{prefix}.flow.v1",
        "--topic-alerts": f"{prefix}.alerts.v1",
        "--topic-deadletter": f"{prefix}.deadletter.v1",
    }
    # The worker creates the dead-letter topic itself, sized for the snapshot topic's records.
    topic_names = [name for flag, name in topics.items() if flag != "--topic-deadletter"]
    started_broker = broker.info() is None
    procs: list[tuple[str, Child]] = []
    try:
        print(f"demo: Kafka on {broker.bootstrap} ...", flush=True)
        try:
            broker.start()
        except BrokerSetupError as exc:
            raise CommandFailed(f"cannot start Kafka: {exc}") from exc
        # Topics first, with the partitions the worker expects: a consumer that subscribes
        # before they exist would let the broker auto-create them with one partition.
        asyncio.run(ensure_topics({"bootstrap_servers": broker.bootstrap}, topic_names, 3))
        sim_port = free_port()
        procs.append(("OpenD simulator", capflow(
            "opend-sim", "--port", str(sim_port), "--scenario", str(args.scenario),
            "--speed", str(args.speed), "--hold", log=logs / "opend-sim.log",
        )))  # fmt: skip
        web_port = free_port()
        worker_args = [
            "worker", "--kafka-bootstrap", broker.bootstrap, "--opend-port", str(sim_port),
            "--watchlist", watchlist, "--app-id", f"capflow-demo-{run_id}",
            "--ignore-market-hours", "--no-leader-grace", "--web-port", str(web_port),
            "--data-dir", str(logs / "worker"),
        ]  # fmt: skip
        for flag, name in topics.items():
            worker_args += [flag, name]
        procs.append(("worker", capflow(*worker_args, log=logs / "worker.log")))
        print(
            f"demo: simulator on 127.0.0.1:{sim_port} (scenario {scenario.name or args.scenario}, "
            f"speed {args.speed:g}x), worker polling {watchlist}\n"
            f"demo: logs in {logs}; metrics http://127.0.0.1:{web_port}/metrics/\n"
            f"demo: following {topics['--topic-alerts']} (Ctrl-C stops everything) ...",
            flush=True,
        )
        count = asyncio.run(
            _follow(args, broker.bootstrap, topics["--topic-alerts"], web_port, procs)
        )
        print(f"demo: {count} alerts", flush=True)
        return 0
    except DemoFailed as exc:
        raise CommandFailed(str(exc)) from exc
    except KeyboardInterrupt:
        print("\ndemo: stopping ...", flush=True)
        return 0
    finally:
        for name, child in reversed(procs):
            with contextlib.suppress(Exception):
                _stop(child, name)
        if started_broker and not args.keep_kafka:
            broker.stop()
            print("demo: stopped Kafka", flush=True)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="one command: broker, simulator, worker, alerts in the terminal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", default=str(DEMO_PATH), help="scenario JSON file")
    parser.add_argument(
        "--speed",
        type=float,
        default=20.0,
        help="simulated seconds per wall second (default %(default)s)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--progress",
        type=float,
        default=10.0,
        help="seconds between progress lines (default %(default)s)",
    )
    parser.add_argument(
        "--keep-kafka", action="store_true", help="leave the broker running when the demo ends"
    )
    add_broker_settings(parser)  # --data-dir holds the broker and the demo's logs
    parser.set_defaults(func=run)
