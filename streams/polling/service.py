"""The polling side of a worker, built from its settings: gateway pool, status board,
ownership and the snapshot publisher, started and stopped in the right order.

Order matters on the way out: pollers stop first (nothing is sent to OpenD after
:meth:`PollingService.stop_polling`), then the worker leaves the gateway group so
another worker can take over, then the Kafka clients close, each within a bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import uuid
from typing import Any

from streams.config import kafka_client_kwargs
from streams.opend.client import OpenDClient, client_from_args
from streams.polling import market_state
from streams.polling.gateways import Gateway, gateways_from_args
from streams.polling.market_state import MarketState
from streams.polling.ownership import GatewayOwnership
from streams.polling.pool import GatewayClient, GatewayPool
from streams.polling.publisher import SnapshotPublisher
from streams.polling.schedules import make_scheduler
from streams.polling.status import GatewayStatusBoard
from streams.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)

LIMIT_MARGIN_S = 0.5
CLOSE_TIMEOUT_S = 5.0


def control_topic(args: argparse.Namespace) -> str:
    return str(getattr(args, "gateway_topic", "") or f"{args.app_id}.gateways")


def make_limiter(args: argparse.Namespace) -> SlidingWindowLimiter:
    # The margin absorbs network jitter: OpenD counts arrivals, we count departures.
    window = args.rate_limit_window + LIMIT_MARGIN_S
    return SlidingWindowLimiter(
        args.rate_limit_requests, window, spacing=window / args.rate_limit_requests
    )


def _market_state_of(gw: Gateway, client: GatewayClient) -> MarketState | None:
    """OpenD's market states asked of this gateway's own client (hours as fallback)."""
    if not isinstance(client, OpenDClient):
        return None
    return market_state.for_client(client)


class PollingService:
    """Everything a worker needs to poll its gateways; one per worker process."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.worker_id = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.gateways: list[Gateway] = gateways_from_args(
            getattr(args, "opend", ""), args.opend_host, args.opend_port
        )
        kwargs = kafka_client_kwargs(args)
        topic = control_topic(args)
        self.publisher = SnapshotPublisher(args.topic_distribution, kwargs)
        self.board = GatewayStatusBoard(topic, self.gateways, kwargs, worker=self.worker_id)
        schedule = getattr(args, "schedule", "round-robin")
        self.pool = GatewayPool(
            self.gateways,
            args.watchlist,
            self.publisher.publish,
            self.board,
            make_client=lambda gw: client_from_args(args, host=gw.host, port=gw.port),
            make_market_state=_market_state_of,
            make_limiter=lambda: make_limiter(args),
            make_scheduler=lambda: make_scheduler(schedule, args),
            is_owner=self._owns,
            is_assigned=lambda k: k in self.ownership.owned,
            ignore_market_hours=args.ignore_market_hours,
            handover_grace=args.leader_grace,
            down_after=getattr(args, "gateway_down_after", 10.0),
        )
        self.ownership = GatewayOwnership(
            topic,
            f"{args.app_id}.gateways",
            kwargs,
            session_timeout=args.session_timeout,
            on_assigned=self.pool.acquire,
            on_revoked=self.pool.release,
        )

    def _owns(self, index: int) -> bool:
        return self.ownership.owns(index)

    def stop_polling(self) -> None:
        """Synchronous and immediate: for the SIGTERM handler, before anything else."""
        if not self.pool.stopped:
            log.info("stopping: no OpenD request is sent from now on")
        self.pool.stop_polling()

    async def run(self) -> None:
        """Poll the gateways the group gives this worker until cancelled."""
        started: list[Any] = []
        try:
            for part in (self.publisher, self.board, self.ownership):
                await part.start()
                started.append(part)
            log.info(
                "worker %s: %d gateway(s) %s, control topic %s",
                self.worker_id,
                len(self.gateways),
                ", ".join(f"{g.label}={g.address}" for g in self.gateways),
                self.ownership.topic,
            )
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self._shutdown(started))

    async def _shutdown(self, started: list[Any]) -> None:
        self.stop_polling()
        await self.pool.close()
        for part in reversed(started):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(part.stop(), CLOSE_TIMEOUT_S * 2)
