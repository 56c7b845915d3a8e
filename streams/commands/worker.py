"""``capflow worker``: a Faust worker running the processors and polling the gateways it owns."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from streams.commands import CommandFailed, UsageError
from streams.kafka.preflight import check_access_sync
from streams.opend.crypto import CryptoError, load_rsa_key
from streams.polling.gateways import (
    Gateway,
    GatewayConfigError,
    check_resolvable,
    gateways_from_args,
    probe,
)
from streams.settings import PipelineSettings
from streams.settings.flags import add_settings, from_args


def _check_polling(config: PipelineSettings) -> list[Gateway]:
    """The gateways to poll; bad polling settings are a usage error."""
    opend = config.opend
    try:
        gateways = gateways_from_args(opend.gateways, opend.host, opend.port)
        check_resolvable(gateways)
    except GatewayConfigError as exc:
        raise UsageError(f"bad gateway list (CAPFLOW_OPEND / --opend): {exc}") from exc
    return gateways


def _read_watchlist(config: PipelineSettings) -> str:
    """Every watchlist source read once, described: a value that cannot work (a bad code,
    an empty file, an unknown or empty group) is a usage error, one that cannot be read
    (a missing file, OpenD not answering) a failure."""
    from streams.polling.service import watchlist_source
    from streams.polling.watchlist import WatchlistError

    source, client = watchlist_source(config)

    async def load() -> None:
        try:
            await source.load()
        finally:
            if client is not None:
                await client.close()

    try:
        asyncio.run(load())
    except WatchlistError as exc:
        raise (UsageError if exc.usage else CommandFailed)(str(exc)) from exc
    return source.describe()


def _check_settings(config: PipelineSettings) -> None:
    """A malformed watchlist or RSA key is a usage error, found before anything starts."""
    from streams.polling.watchlist import WatchlistError, canonical_codes

    try:
        canonical_codes(config.poller.watchlist, "CAPFLOW_WATCHLIST / --watchlist")
    except WatchlistError as exc:
        raise UsageError(str(exc)) from exc
    if config.opend.rsa_key:
        try:
            load_rsa_key(config.opend.rsa_key)
        except CryptoError as exc:
            raise UsageError(f"--opend-rsa-key: {exc}") from exc


def _check_kafka(config: PipelineSettings, gateways: list[Gateway]) -> None:
    """A wrong password, certificate or missing ACL ends here, in seconds, instead of in
    Faust's retries; Faust's own topics (state changelog, leader election) count too."""
    from streams.pipeline.app import STATE_TABLE

    app_id = config.worker.app_id
    faust_topics = [f"{app_id}-{STATE_TABLE}-changelog", f"{app_id}-__assignor-__leader"]
    kafka, timeout = config.kafka.client_kwargs, config.kafka.connect_timeout
    check_access_sync(kafka, config.topics.all() + faust_topics, timeout, group=app_id)
    if gateways:  # the gateway group and its control topic (see streams.polling.service)
        check_access_sync(kafka, [config.control_topic], timeout, group=config.gateway_group)


def _create_topics(config: PipelineSettings, gateways: list[Gateway]) -> int | None:
    """Create what is missing; the dead-letter topic's record limit (see Pipeline)."""
    from aiokafka.errors import KafkaError

    from streams.kafka.topics import TopicMismatchError
    from streams.polling.ownership import ControlTopicError

    try:
        return asyncio.run(_topics(config, len(gateways)))
    except (ConnectionError, TopicMismatchError, ControlTopicError, KafkaError) as exc:
        raise CommandFailed(str(exc)) from exc


async def _topics(config: PipelineSettings, gateways: int) -> int | None:
    from streams.kafka.topics import ensure_topics
    from streams.pipeline.deadletter import ensure_deadletter_topic
    from streams.polling.ownership import ensure_control_topic

    kafka, topics = config.kafka.client_kwargs, config.topics
    await ensure_topics(
        kafka, [t for t in topics.all() if t != topics.deadletter], topics.partitions
    )
    # Then the dead-letter topic, with room for any record the snapshot topic holds.
    limit = await ensure_deadletter_topic(
        kafka, topics.distribution, topics.deadletter, topics.partitions
    )
    if gateways:
        await ensure_control_topic(kafka, config.control_topic, gateways)
    return limit


def _warn_refusing(gateways: list[Gateway]) -> None:
    for gw in gateways:
        refused = probe(gw)
        if refused is not None:
            print(
                f"capflow worker: warning: gateway {gw.label} ({gw.address}) does not accept "
                f"connections now ({refused}); its securities go to the other gateways "
                "while it stays down",
                file=sys.stderr,
                flush=True,
            )


def run(args: argparse.Namespace) -> int:
    """Check the settings, create the topics, then run the Faust worker until stopped."""
    from streams.pipeline.app import Pipeline
    from streams.pipeline.shutdown import StoppingWorker

    config = from_args(args, PipelineSettings)  # the one place the options become settings
    _check_settings(config)
    gateways: list[Gateway] = []
    watchlist = "none (--no-poller)"
    if config.worker.poller:
        gateways = _check_polling(config)
        watchlist = _read_watchlist(config)
    _check_kafka(config, gateways)
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(message)s")
    dead_letter_limit = _create_topics(config, gateways)
    _warn_refusing(gateways)
    pipeline = Pipeline(config, dead_letter_limit=dead_letter_limit)
    opend = ", ".join(f"{g.label}={g.address}" for g in gateways) or "none (--no-poller)"
    print(
        f"capflow worker: app {config.worker.app_id}, Kafka {config.kafka.bootstrap}, "
        f"OpenD {opend}, watchlist {watchlist}, "
        f"web http://127.0.0.1:{config.worker.web_port}/metrics/",
        flush=True,
    )
    worker = StoppingWorker(
        pipeline.app,
        loglevel=args.loglevel,
        quiet=True,
        before_stop=pipeline.before_stop,
        timeout=config.worker.shutdown_timeout,
    )
    pipeline.stall_exit = worker.fail  # a stalled partition: stop in order, exit 1
    # Faust's progress spinner lowers the root logger to DEBUG at --loglevel warn/error,
    # which makes every debug call in the hot path build a log record.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "worker",
        help="run the poller and the flow/alert processors (a Faust worker)",
        description="Start a Faust worker. Every worker of the same --app-id shares the "
        "snapshot partitions and the OpenD gateways (--opend): each gateway is polled by "
        "exactly one worker at a time, the one the gateway group assigns it, so starting "
        "more workers never breaks a gateway's rate limit. The securities are those of "
        "--watchlist, --watchlist-file and --watchlist-group (a group of the Futu/moomoo "
        "app), all of them; the file and the group are re-read every --watchlist-refresh "
        "seconds, so securities added or removed take effect without a restart. Metrics at "
        "http://127.0.0.1:<web-port>/metrics/, gateways at /status/, current state of one "
        "security at /flow/<SECURITY>/.",
    )
    add_settings(parser, PipelineSettings)
    parser.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warn", "error"],
        help="log level (default %(default)s)",
    )
    parser.set_defaults(func=run)
