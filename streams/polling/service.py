"""The polling side of a worker, built from its settings: gateway pool, status board,
ownership, flow feedback, the snapshot publisher and the live watchlist, started and
stopped in the right order.

The watchlist is read before any gateway is taken (so the first spread is the full
one) and then every ``--watchlist-refresh`` seconds; each new list goes to the pool.

Each gateway's poller has its own scheduler (``--schedule``); with the adaptive one,
one flow feedback consumer per worker reads ``capflow.flow.v1`` back and hands every
record to the pool, which passes it to the scheduler of every gateway (a security can
move between gateways, so each keeps the flow state of all).

Order matters on the way out: pollers stop first (nothing is sent to OpenD after
:meth:`PollingService.stop_polling`), then the worker leaves the gateway group so
another worker can take over, then the Kafka clients close, each within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from typing import Any

from streams.kafka.sending import AckedPublisher
from streams.opend.client import OpenDClient, client_from_settings
from streams.polling import market_state
from streams.polling.flow_feedback import FlowFeedback
from streams.polling.gateways import Gateway, gateways_from_args
from streams.polling.market_state import MarketState
from streams.polling.ownership import GatewayOwnership
from streams.polling.pool import GatewayClient, GatewayPool
from streams.polling.scheduler import Scheduler, make_scheduler
from streams.polling.status import GatewayStatusBoard
from streams.polling.watchlist import WatchlistError, WatchlistSource, group_reader
from streams.settings import FlowSettings, PipelineSettings, PollerSettings
from streams.timing.ratelimit import SlidingWindowLimiter, limit_margin

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0


def limiter_window(poller: PollerSettings) -> float:
    """The window the client counts: OpenD's plus a margin, because OpenD counts
    arrivals and we count departures (the margin scales with the window, so a
    speeded-up simulation spends the same share of its budget as real time)."""
    return float(poller.rate_limit_window + limit_margin(poller.rate_limit_window))


def make_limiter(poller: PollerSettings) -> SlidingWindowLimiter:
    """One gateway's limiter: its budget, requests paced evenly over the window."""
    window = limiter_window(poller)
    return SlidingWindowLimiter(
        poller.rate_limit_requests, window, spacing=window / poller.rate_limit_requests
    )


def make_flow_limiter(poller: PollerSettings) -> SlidingWindowLimiter:
    """One gateway's capital-flow (3211) limiter: its own budget, never 3212's."""
    window = poller.flow_rate_limit_window + limit_margin(poller.flow_rate_limit_window)
    return SlidingWindowLimiter(
        poller.flow_rate_limit_requests, window, spacing=window / poller.flow_rate_limit_requests
    )


def scheduler_for(poller: PollerSettings, flow: FlowSettings) -> Scheduler:
    """A new scheduler of ``--schedule`` for one gateway's poller."""
    return make_scheduler(
        poller.schedule,
        max_staleness=poller.max_staleness,
        interval=limiter_window(poller) / poller.rate_limit_requests,
        confirm=flow.confirm,
        cooldown=flow.cooldown,
    )


def watchlist_source(config: PipelineSettings) -> tuple[WatchlistSource, OpenDClient | None]:
    """The watchlist the settings describe, and the client its group is read with (None
    without a group): its own connection to the first gateway of ``--opend``, the account
    whose app holds the group, so every worker reads the same group."""
    poller = config.poller
    client = None
    if poller.watchlist_group:
        first = gateways_from_args(config.opend.gateways, config.opend.host, config.opend.port)[0]
        client = client_from_settings(
            config.opend, host=first.host, port=first.port, recv_notify=False
        )
    source = WatchlistSource(
        poller.watchlist,
        poller.watchlist_file,
        poller.watchlist_group,
        refresh=poller.watchlist_refresh,
        read_group=group_reader(client) if client is not None else None,
    )
    return source, client


def _market_state_of(gw: Gateway, client: GatewayClient) -> MarketState | None:
    """OpenD's market states asked of this gateway's own client (hours as fallback)."""
    if not isinstance(client, OpenDClient):
        return None
    return market_state.for_client(client)


class PollingService:
    """Everything a worker needs to poll its gateways; one per worker process."""

    def __init__(self, config: PipelineSettings) -> None:
        self.config = config
        poller = config.poller
        self.worker_id = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.gateways: list[Gateway] = gateways_from_args(
            config.opend.gateways, config.opend.host, config.opend.port
        )
        kwargs = config.kafka.client_kwargs
        topic = config.control_topic
        self.publisher = AckedPublisher(config.topics.distribution, kwargs)
        # The capital-flow series (minute history) go to their own topic, same partitioning.
        self.series_publisher: AckedPublisher | None = None
        if poller.minute_history:
            self.series_publisher = AckedPublisher(config.topics.capitalflow, kwargs)
        self.board = GatewayStatusBoard(topic, self.gateways, kwargs, worker=self.worker_id)
        self.watchlist, self.group_client = watchlist_source(config)
        self.pool = GatewayPool(
            self.gateways,
            self.watchlist.codes,  # --watchlist alone until run() reads the file and group
            self.publisher.publish,
            self.board,
            make_client=lambda gw: client_from_settings(config.opend, host=gw.host, port=gw.port),
            make_market_state=_market_state_of,
            make_limiter=lambda: make_limiter(poller),
            make_flow_limiter=lambda: make_flow_limiter(poller),
            # Without a series publisher (--no-minute-history) no gateway fetches history.
            publish_series=self.series_publisher.publish if self.series_publisher else None,
            make_scheduler=lambda: scheduler_for(poller, config.flow),
            is_owner=self._owns,
            is_assigned=lambda k: k in self.ownership.owned,
            ignore_market_hours=poller.ignore_market_hours,
            handover_grace=poller.leader_grace,
            down_after=poller.gateway_down_after,
            sick_after=poller.gateway_sick_after,
        )
        self.ownership = GatewayOwnership(
            topic,
            config.gateway_group,
            kwargs,
            session_timeout=config.worker.session_timeout,
            on_assigned=self.pool.acquire,
            on_revoked=self.pool.release,
        )
        # The adaptive schedule and the history planners read flows; one consumer feeds
        # every gateway's.
        self.schedule = poller.schedule
        self.feedback: FlowFeedback | None = None
        if self.schedule != "round-robin" or poller.minute_history:
            self.feedback = FlowFeedback(config.topics.flow, self.pool, kwargs)

    def flows_read(self) -> int | None:
        """Flow records fed back to the schedulers so far (None: the schedule reads none)."""
        return self.feedback.records if self.feedback is not None else None

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
            await self._read_watchlist()
            parts: list[Any] = [self.publisher, self.board]
            if self.series_publisher is not None:
                parts.append(self.series_publisher)
            if self.feedback is not None:
                parts.append(self.feedback)  # before ownership: no poll goes unobserved
            for part in (*parts, self.ownership):
                await part.start()
                started.append(part)
            log.info(
                "worker %s: %d gateway(s) %s, control topic %s",
                self.worker_id,
                len(self.gateways),
                ", ".join(f"{g.label}={g.address}" for g in self.gateways),
                self.ownership.topic,
            )
            await self.watchlist.run(self.pool.set_watchlist)  # returns at once if not live
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self._shutdown(started))

    async def _read_watchlist(self) -> None:
        """The first full read. ``capflow worker`` read every source before it started,
        so a failure now is passing: a warning, and what the other sources give."""
        try:
            await self.watchlist.load()
        except WatchlistError as exc:
            log.warning("watchlist: %s; polling what the other sources give for now", exc)
            await self.watchlist.refresh()
        self.pool.set_watchlist(self.watchlist.codes)
        log.info("watchlist: %s", self.watchlist.describe())

    async def _shutdown(self, started: list[Any]) -> None:
        self.stop_polling()
        await self.pool.close()
        if self.group_client is not None:
            await self.group_client.close()
        for part in reversed(started):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(part.stop(), CLOSE_TIMEOUT_S * 2)
