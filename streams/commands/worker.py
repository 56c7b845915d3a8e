"""``capflow worker``: a Faust worker running the poller (on the leader) and the processors."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from streams.config import add_options, group_names, kafka_client_kwargs
from streams.kafka_access import check_access_sync
from streams.opend.crypto import CryptoError, load_rsa_key
from streams.opend.security import SecurityFormatError, parse_security


def _run(args: argparse.Namespace) -> int:
    import faust

    from streams.pipeline.app import STATE_TABLE, Pipeline
    from streams.pipeline.topics import TopicMismatchError, ensure_topics

    bad = []
    for security in args.watchlist:
        try:
            parse_security(security)
        except SecurityFormatError as exc:
            bad.append(str(exc))
    if bad:
        print(
            "capflow worker: bad watchlist (CAPFLOW_WATCHLIST / --watchlist):\n  "
            + "\n  ".join(bad),
            file=sys.stderr,
        )
        return 2
    if args.opend_rsa_key:
        try:
            load_rsa_key(args.opend_rsa_key)
        except CryptoError as exc:
            print(f"capflow worker: --opend-rsa-key: {exc}", file=sys.stderr)
            return 2
    topics = [args.topic_distribution, args.topic_flow, args.topic_alerts, args.topic_deadletter]
    kafka = kafka_client_kwargs(args)
    # A wrong password, certificate or missing ACL ends here, in seconds, instead of in
    # Faust's retries; Faust's own topics (state changelog, leader election) count too.
    faust_topics = [f"{args.app_id}-{STATE_TABLE}-changelog", f"{args.app_id}-__assignor-__leader"]
    check_access_sync(kafka, topics + faust_topics, args.kafka_connect_timeout, group=args.app_id)
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(ensure_topics(kafka, topics, args.topic_partitions))
    except (ConnectionError, TopicMismatchError) as exc:
        print(f"capflow worker: {exc}", file=sys.stderr)
        return 1
    pipeline = Pipeline(args)
    print(
        f"capflow worker: app {args.app_id}, Kafka {args.kafka_bootstrap}, "
        f"OpenD {args.opend_host}:{args.opend_port}, watchlist {','.join(args.watchlist)}, "
        f"web http://127.0.0.1:{args.web_port}/metrics/",
        flush=True,
    )
    worker = faust.Worker(pipeline.app, loglevel=args.loglevel, quiet=True)
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
        "snapshot partitions; only the group's leader polls OpenD, so starting more workers "
        "never breaks the rate limit. Metrics at http://127.0.0.1:<web-port>/metrics/, "
        "current state of one security at /flow/<SECURITY>/.",
    )
    add_options(parser, group_names("kafka", "opend", "poller", "flow", "worker"))
    parser.add_argument("--no-poller", action="store_true", help="process only; never poll OpenD")
    parser.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warn", "error"],
        help="log level (default %(default)s)",
    )
    parser.set_defaults(func=_run)
