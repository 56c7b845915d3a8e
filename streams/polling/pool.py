"""The gateway pool of one worker: a poller per owned gateway, each with its own
client, limiter, scheduler and counters.

Ownership (which gateways this worker polls) comes from ``streams.polling.ownership``;
the securities a gateway polls are its share of the spread over the gateways that
are up (``streams.polling.spread``, up set from ``streams.polling.status``). A gateway
whose connections fail for ``down_after`` seconds is reported down, one whose requests
fail for ``sick_after`` seconds while it accepts connections sick
(``streams.polling.health``, judged on a timer), so its securities move to the
others; its owner keeps trying (probing a sick one) and reports it up again when it
answers. One gateway's troubles never wait on another's: each runs in its own tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from streams.opend.errors import ConnectionLost
from streams.polling import spread
from streams.polling.gateways import Gateway
from streams.polling.health import SICK, UP, GatewayHealth, HealthPolicy
from streams.polling.history import CapitalFlowSource, HistoryFetcher, request_counts
from streams.polling.market_state import MarketState
from streams.polling.poller import DistributionSource, Poller, Publish
from streams.polling.rejections import Rejection
from streams.polling.scheduler import Scheduler
from streams.timing.backoff import Backoff
from streams.timing.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0
HEALTH_TICK_S = 0.25  # how often an owner judges its gateway's health
# Reconnects to a gateway that does not answer: 0.5, 1, 2, 4, then every 5 s. No jitter:
# one owner polls a gateway, so no crowd of clients retries in step.
RECONNECT_BACKOFF = Backoff(initial=0.5, cap=5.0, jitter=0.0)


class GatewayClient(DistributionSource, CapitalFlowSource, Protocol):
    """What the pool needs of an OpenD client beyond the poller's needs."""

    @property
    def connected(self) -> bool: ...

    async def close(self) -> None: ...


class StatusBoard(Protocol):
    def up_labels(self) -> list[str]: ...

    def is_up(self, label: str) -> bool: ...

    def state_of(self, label: str) -> str: ...

    def reason_of(self, label: str) -> str: ...

    def report(self, gw: Gateway, state: str, reason: str = "") -> None: ...


class GatewayPoller:
    """One gateway: polls its share while this worker owns it, judges and reports its
    health (``streams.polling.health``) on a timer, probes it while it is sick."""

    def __init__(
        self,
        gateway: Gateway,
        client: GatewayClient,
        limiter: SlidingWindowLimiter,
        poller: Poller,
        board: StatusBoard,
        *,
        may_send: Callable[[], bool],
        keep_running: Callable[[], bool] | None = None,
        history: HistoryFetcher | None = None,
        health: GatewayHealth | None = None,
        home: Callable[[], list[str]] | None = None,
        handover_grace: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``health`` is shared with the poller and the history fetcher, which tell it
        what their requests see; ``home`` gives the securities a probe may ask (the
        gateway's share were it up)."""
        self.gateway = gateway
        self.client = client
        self.limiter = limiter
        self.poller = poller
        self.board = board
        self.may_send = may_send
        self.keep_running = keep_running if keep_running is not None else may_send
        self.history = history
        self.health = health if health is not None else GatewayHealth(clock=clock)
        self.home = home if home is not None else lambda: list(poller.watchlist)
        self.handover_grace = handover_grace
        self.clock = clock
        self.sleep = sleep
        self.task: asyncio.Task[None] | None = None
        self.history_task: asyncio.Task[None] | None = None
        self.watch_task: asyncio.Task[None] | None = None
        self.owned_since: float | None = None
        self._announced = False
        self._probes = 0

    @property
    def polling(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The gateway's running tasks: polling, capital flow, health timer."""
        return [t for t in (self.task, self.history_task, self.watch_task) if t is not None]

    @property
    def last_error(self) -> str:
        return self.health.last_error

    def start(self, grace: bool = True) -> None:
        """Poll from now on; ``grace=False`` when no other worker can have polled the
        gateway since this one last did (its limiter then still holds every request,
        and its health is still what this worker saw)."""
        if self.polling:
            return
        self.owned_since = self.clock()
        self._announced = False
        history = self.history
        if grace:
            self.health.reset()
        if self.handover_grace and grace:
            # The previous owner may have spent the window just before it stopped,
            # and OpenD counts per account, not per worker: both budgets.
            self.limiter.penalize()
            if history is not None:
                history.limiter.penalize()
        label = self.gateway.label
        self.task = asyncio.create_task(self._run(), name=f"gateway-{label}")
        self.watch_task = asyncio.create_task(self._watch(), name=f"gateway-{label}-health")
        if history is not None:
            self.history_task = asyncio.create_task(
                history.run(self.poller.due, self.may_send), name=f"gateway-{label}-history"
            )

    def cancel(self) -> None:
        """Stop sending now (synchronous, for signal handlers); ``stop`` waits for it."""
        for task in self.tasks:
            task.cancel()

    async def stop(self) -> None:
        tasks = self.tasks
        self.task = self.history_task = self.watch_task = None
        self.owned_since = None
        if not tasks:
            return
        for running in tasks:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(running, STOP_TIMEOUT_S)
        await self.client.close()

    async def _run(self) -> None:
        """Poll while owned (probe while sick); while ownership is only unconfirmed (the
        lease lapsed because Kafka does not answer) wait without sending, and go on once
        it is confirmed again."""
        gw = self.gateway
        log.info(
            "polling gateway %s (%s): %d of %d securities",
            gw.label,
            gw.address,
            len(self.poller.active()),
            len(self.poller.watchlist),
        )
        retry = RECONNECT_BACKOFF.waits()
        while self.keep_running():
            if not self.may_send():
                await self.sleep(0.5)
                continue
            if not self.client.connected:
                if not await self._connect():
                    await self.sleep(retry.next_wait())
                    continue
                retry.reset()
            try:
                if self.health.state == SICK:
                    await self._probe()
                else:
                    await self.poller.step(self.may_send)
            except ConnectionLost as exc:  # dropped between the check and the request
                self._unreachable(exc)
        log.info("gateway %s: no longer owned here, polling stops", gw.label)

    def _unreachable(self, exc: ConnectionLost) -> None:
        """Count a failed connection; the first of an outage is logged."""
        if self.health.unreachable(str(exc)):
            log.warning("gateway %s does not answer: %s", self.gateway.label, exc)

    async def _connect(self) -> bool:
        try:
            await self.client.ensure_connected(1)
        except ConnectionLost as exc:
            self._unreachable(exc)
            return False
        self.health.reachable()
        # The first connection of an ownership tells the others who polls the gateway now.
        self.judge(announce=not self._announced)
        self._announced = True
        return True

    async def _watch(self) -> None:
        """Judge the gateway's health every HEALTH_TICK_S while it is owned, whatever the
        polling loop waits for (a connection attempt, its backoff, the budget)."""
        while self.keep_running():
            if self.may_send():
                if not self.client.connected:
                    self.health.disconnected()
                self.judge()
            await self.sleep(HEALTH_TICK_S)

    def judge(self, announce: bool = False) -> None:
        """Report the gateway's state when it changed, when ``announce`` is asked, or when
        the board says otherwise (a late record of another worker; up only once connected)."""
        label, health = self.gateway.label, self.health
        change = health.check(any(other != label for other in self.board.up_labels()))
        if change is None and not announce:
            if self.board.state_of(label) == health.state:
                return
            if health.state == UP and not self.client.connected:
                return  # not before it has answered
        self.board.report(self.gateway, health.state, health.reason)

    async def _probe(self) -> None:
        """One capital-distribution request to a security of the gateway's home share
        (any of the watchlist when each of those is refused for itself), every
        ``probe_every`` seconds within its budget: a reply with data heals it."""
        wait = self.health.probe_due()
        now = self.poller.wall_clock()
        choices = self.poller.probe_choices(self.home(), now) or self.poller.probe_choices(
            self.poller.watchlist, now
        )
        if wait > 0 or not choices:
            await self.sleep(min(wait, HEALTH_TICK_S) if wait > 0 else self.poller.idle)
            return
        security = choices[self._probes % len(choices)]
        await self.limiter.acquire(self.sleep)
        if not self.may_send() or self.health.state != SICK:
            return
        self._probes += 1
        self.health.probed()
        if await self.poller.request(security):
            log.info("gateway %s answered a probe (%s)", self.gateway.label, security)
        self.judge()

    def describe(self, owned: bool) -> dict[str, Any]:
        """This gateway as this worker sees it (``/status/`` and metrics)."""
        share = list(self.poller.share()) if self.poller.share is not None else []
        last = self.poller.stats.last_received
        wall = self.poller.wall_clock()
        stale = [wall - last[s] for s in share if s in last]
        never = [s for s in share if s not in last]
        stats = self.poller.stats
        label = self.gateway.label
        return {
            "gateway": label,
            "address": self.gateway.address,
            "owned": owned,
            "up": self.board.is_up(label),
            "state": self.board.state_of(label),
            "state_reason": self.board.reason_of(label),
            "health": self.health.describe() if owned else None,
            "connected": self.client.connected,
            "securities": share,
            "never_received": never,
            "staleness_max_s": round(max(stale), 3) if stale else None,
            "budget": self.limiter.view(owned),
            "requests": request_counts(stats),
            "backed_off": [entry.as_dict(wall) for entry in self.poller.rejections.entries()],
            "markets": self.markets(wall),
            "last_error": self.last_error,
            "capital_flow": self.history.describe(owned) if self.history is not None else None,
        }

    def markets(self, now: float) -> dict[str, dict[str, object]] | None:
        """This gateway's view of the market states (None: static hours only)."""
        state = self.poller.market_state
        return state.status(now) if state is not None else None


class GatewayPool:
    """Every configured gateway's poller; starts and stops them as ownership moves."""

    def __init__(
        self,
        gateways: list[Gateway],
        watchlist: list[str],
        publish: Publish,
        board: StatusBoard,
        *,
        make_client: Callable[[Gateway], GatewayClient],
        make_limiter: Callable[[], SlidingWindowLimiter],
        make_scheduler: Callable[[], Scheduler],
        make_market_state: Callable[[Gateway, GatewayClient], MarketState | None] | None = None,
        make_flow_limiter: Callable[[], SlidingWindowLimiter] | None = None,
        publish_series: Publish | None = None,
        is_owner: Callable[[int], bool],
        is_assigned: Callable[[int], bool] | None = None,
        ignore_market_hours: bool = False,
        handover_grace: bool = True,
        down_after: float = 10.0,
        sick_after: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``is_owner(k)``: may gateway k be polled now (assigned and confirmed);
        ``is_assigned(k)``: is it still this worker's at all (default: ``is_owner``).
        ``make_market_state`` gives a gateway's poller OpenD's market states, asked of
        that gateway's own client (None: the static hours table).
        ``make_flow_limiter`` and ``publish_series`` give each gateway its capital-flow
        side (its own budget; None: no minute history is fetched).
        ``down_after`` and ``sick_after`` are the health policy of every gateway.
        ``wall_clock`` stamps snapshots and market hours, ``clock`` times health and
        ownership, ``sleep`` waits (all three are injected by tests)."""
        self.gateways = gateways
        self.watchlist = list(dict.fromkeys(watchlist))
        self._watching = set(self.watchlist)
        self.board = board
        self.is_owner = is_owner
        self.is_assigned = is_assigned if is_assigned is not None else is_owner
        self.stopped = False
        self.pollers: dict[int, GatewayPoller] = {}
        policy = HealthPolicy(down_after=down_after, sick_after=sick_after)
        for gw in gateways:
            client = make_client(gw)
            limiter = make_limiter()
            health = GatewayHealth(policy, clock)
            history = None
            if make_flow_limiter is not None and publish_series is not None:
                history = HistoryFetcher(
                    client,
                    publish_series,
                    make_flow_limiter(),
                    wall_clock=wall_clock,
                    sleep=sleep,
                    health=health,
                )
            poller = Poller(
                client,
                publish,
                self.watchlist,
                limiter,
                ignore_market_hours=ignore_market_hours,
                wall_clock=wall_clock,
                sleep=sleep,
                market_state=make_market_state(gw, client) if make_market_state else None,
                scheduler=make_scheduler(),
                share=self._share_of(gw.label),
                connect_attempts=1,
                history=history,
                health=health,
            )
            self.pollers[gw.index] = GatewayPoller(
                gw,
                client,
                limiter,
                poller,
                board,
                may_send=self._may_send_of(gw.index),
                keep_running=self._keep_running_of(gw.index),
                history=history,
                health=health,
                home=self._home_of(gw.label),
                handover_grace=handover_grace,
                clock=clock,
                sleep=sleep,
            )

    def _share_of(self, label: str) -> Callable[[], list[str]]:
        configured = [gw.label for gw in self.gateways]
        return lambda: spread.share(self.watchlist, self.board.up_labels(), label, configured)

    def _home_of(self, label: str) -> Callable[[], list[str]]:
        """The share ``label`` would poll were it up now: what its probes may ask."""
        configured = [gw.label for gw in self.gateways]
        return lambda: spread.share(
            self.watchlist, {*self.board.up_labels(), label}, label, configured
        )

    def _may_send_of(self, index: int) -> Callable[[], bool]:
        return lambda: not self.stopped and self.is_owner(index)

    def _keep_running_of(self, index: int) -> Callable[[], bool]:
        return lambda: not self.stopped and self.is_assigned(index)

    async def acquire(self, indexes: set[int], continuing: set[int] | None = None) -> None:
        """The group gave these gateways to this worker (``continuing``: straight back)."""
        for k in sorted(indexes):
            if not self.stopped and k in self.pollers:
                self.pollers[k].start(grace=k not in (continuing or set()))

    async def release(self, indexes: set[int]) -> None:
        """The group took these gateways away: their pollers stop before this returns."""
        await asyncio.gather(*(self.pollers[k].stop() for k in indexes if k in self.pollers))

    def stop_polling(self) -> None:
        """Stop every poller at once (SIGTERM); nothing is sent after this returns."""
        self.stopped = True
        for gp in self.pollers.values():
            gp.cancel()

    async def close(self) -> None:
        self.stopped = True
        await asyncio.gather(*(gp.stop() for gp in self.pollers.values()))
        for gp in self.pollers.values():
            await gp.client.close()

    def set_watchlist(self, watchlist: list[str]) -> None:
        """The live watchlist changed: every gateway's share is taken from it from now on.

        A removed security is requested no more, by either budget, and what the pollers
        knew of it goes; an added one is due at once (its minute history first, as for
        any security no flow has been read of). Every worker applies the same list at
        about the same instant (``streams.polling.watchlist``), so their spreads agree.
        """
        self.watchlist = list(dict.fromkeys(watchlist))
        self._watching = set(self.watchlist)
        for gp in self.pollers.values():
            gp.poller.set_watchlist(self.watchlist)

    def observe_flow(self, security: str, flow: Mapping[str, Any]) -> None:
        """A flow record read back from Kafka: every gateway's scheduler may use it (only
        of a security in the watchlist: the topic may carry others, or one just removed)."""
        if security not in self._watching:
            return
        for gp in self.pollers.values():
            gp.poller.scheduler.observe_flow(security, flow)
            if gp.history is not None:
                gp.history.planner.observe_flow(security, flow)

    def status(self) -> list[dict[str, Any]]:
        return [gp.describe(self.is_owner(k) and gp.polling) for k, gp in self.pollers.items()]

    def owned(self) -> list[GatewayPoller]:
        """The pollers of the gateways this worker polls now, in gateway order."""
        return [gp for k, gp in sorted(self.pollers.items()) if self.is_owner(k) and gp.polling]

    def rejections(self) -> list[Rejection]:
        """Securities backed off after a refusal on the owned gateways, one entry each
        (the one asked again last when two gateways refused the same security)."""
        merged: dict[str, Rejection] = {}
        for gp in self.owned():
            for entry in gp.poller.rejections.entries():
                known = merged.get(entry.security)
                if known is None or entry.retry_at > known.retry_at:
                    merged[entry.security] = entry
        return [merged[s] for s in sorted(merged)]

    def markets(self, now: float) -> dict[str, dict[str, object]]:
        """Per market, the owned gateways' view: OpenD's word where any of them has it,
        else the static hours (every gateway of a deployment sees the same exchanges)."""
        merged: dict[str, dict[str, object]] = {}
        for gp in self.owned():
            for market, info in (gp.markets(now) or {}).items():
                if market not in merged or (
                    merged[market]["source"] != "opend" and info["source"] == "opend"
                ):
                    merged[market] = info
        return merged

    def polling_status(self, now: float) -> dict[str, Any]:
        """The ``/polling/`` view: per gateway its share, refusals and market states, and
        the same merged over the gateways this worker polls (the single-gateway view)."""
        owned = self.owned()
        gateways = []
        for _, gp in sorted(self.pollers.items()):
            view = gp.poller.status(now)
            gateways.append({"gateway": gp.gateway.label, "owned": gp in owned, **view})
        active = {s for gp in owned for s in gp.poller.active(now)}
        return {
            "watchlist": list(self.watchlist),
            "active": [s for s in self.watchlist if s in active],
            "rejected": [entry.as_dict(now) for entry in self.rejections()],
            "markets": self.markets(now),
            "gateways": gateways,
        }

    def last_received(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for gp in self.pollers.values():
            for security, ts in gp.poller.stats.last_received.items():
                merged[security] = max(ts, merged.get(security, ts))
        return merged

    def budget(self) -> tuple[int, int]:
        """Requests in the current window and the limit, summed over the owned gateways."""
        used = limit = 0
        for k, gp in self.pollers.items():
            if self.is_owner(k):
                used += gp.limiter.used()
                limit += gp.limiter.limit
        return used, limit
