"""The live watchlist: the file format, the union of the sources, re-reads on a fake clock
(changes applied, failures keeping the last good list), and the pool and pollers taking
a new list (a removed security is asked no more, an added one gets its history first)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from streams.observability.metrics import exposition, sample_sum
from streams.opend.errors import ConnectionLost, UnknownGroupError
from streams.polling import spread
from streams.polling.adaptive import Adaptive
from streams.polling.poller import Poller
from streams.polling.watchlist import (
    WatchlistError,
    WatchlistSource,
    parse_watchlist_text,
    read_watchlist_file,
)
from streams.timing.ratelimit import SlidingWindowLimiter
from tests.fakes import HK_OPEN, DeadlineClock, Done, FakeClock
from tests.unit.test_history_fetch import ELEVEN, FakeClient, fetcher, flow
from tests.unit.test_pool import WATCHLIST, make_pool

# -- the file -------------------------------------------------------------------------------


def test_one_code_per_line_comments_and_blank_lines_ignored() -> None:
    text = "# my HK names\n\nhk.00700   # Tencent\n  US.AAPL\nHK.00700\n\t\nSH.600519 #\n"
    assert parse_watchlist_text(text, "w.txt") == ["HK.00700", "US.AAPL", "SH.600519"]


def test_every_bad_line_is_named_with_its_number() -> None:
    with pytest.raises(WatchlistError) as caught:
        parse_watchlist_text("HK.00700\n00700\nHK.00005,HK.00006\nXX.1\n", "w.txt")
    text = str(caught.value)
    assert caught.value.usage
    assert "w.txt:2:" in text and "w.txt:3:" in text and "w.txt:4:" in text
    assert "w.txt:1:" not in text and "unknown market 'XX'" in text


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing yet\n   # at all\n"])
def test_a_file_without_any_code_is_an_error(text: str) -> None:
    with pytest.raises(WatchlistError, match=r"w\.txt: no security in the file") as caught:
        parse_watchlist_text(text, "w.txt")
    assert caught.value.usage


def test_reading_the_file(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_bytes("\ufeffHK.00700\r\nUS.AAPL # 苹果\r\n".encode())  # BOM, CRLF, UTF-8
    assert read_watchlist_file(str(path)) == ["HK.00700", "US.AAPL"]
    with pytest.raises(WatchlistError, match="cannot read") as missing:
        read_watchlist_file(str(tmp_path / "nope.txt"))
    assert not missing.value.usage  # could not be read: a failure, exit 1 at start
    path.write_bytes(b"HK.00700\n\xff\xfe\n")
    with pytest.raises(WatchlistError, match="not UTF-8") as binary:
        read_watchlist_file(str(path))
    assert binary.value.usage


# -- the sources ----------------------------------------------------------------------------


class Groups:
    """OpenD's watchlist groups as the source reads them: answers, unknown groups, outages."""

    def __init__(self, clock: Any = None, **groups: list[str]) -> None:
        self.groups = groups
        self.down = False
        self.clock = clock
        self.reads: list[float] = []

    async def read(self, name: str) -> list[str]:
        self.reads.append(self.clock() if self.clock is not None else 0.0)
        if self.down:
            raise ConnectionLost("opend://fake:1: connection refused")
        if name not in self.groups:
            raise UnknownGroupError(-1, 0, f"unknown watchlist group {name}", 3213)
        return list(self.groups[name])


async def test_the_union_of_the_three_sources_in_order_each_once(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_text("HK.00700\nus.AAPL\n")  # the market in any case
    groups = Groups(Tech=["SH.600519", "HK.00700", "US.MSFT"])
    source = WatchlistSource(
        ["US.AAPL"], str(path), "Tech", refresh=60.0, read_group=groups.read
    )  # fmt: skip
    assert await source.load() == ["US.AAPL", "HK.00700", "SH.600519", "US.MSFT"]
    assert source.describe() == (
        f"4 securities from --watchlist + file {path} + group 'Tech', re-read every 60s"
    )


@pytest.mark.parametrize(
    ("groups", "usage", "message"),
    [
        (Groups(Other=["HK.00700"]), True, "OpenD has no such watchlist group"),
        (Groups(Tech=[]), True, "the group holds no security"),
        (Groups(Tech=["HK.00700", "XX.1"]), True, "unknown market 'XX'"),
    ],
)
async def test_a_group_that_cannot_work_is_a_usage_error(
    groups: Groups, usage: bool, message: str
) -> None:
    source = WatchlistSource(["US.AAPL"], group="Tech", refresh=60.0, read_group=groups.read)
    with pytest.raises(WatchlistError, match=message) as caught:
        await source.load()
    assert caught.value.usage is usage and "--watchlist-group 'Tech'" in str(caught.value)


async def test_opend_not_answering_is_a_failure_and_nothing_at_all_a_usage_error() -> None:
    groups = Groups(Tech=["HK.00700"])
    groups.down = True
    source = WatchlistSource(group="Tech", refresh=60.0, read_group=groups.read)
    with pytest.raises(WatchlistError, match="cannot ask OpenD") as down:
        await source.load()
    assert not down.value.usage
    with pytest.raises(WatchlistError, match="the watchlist is empty") as empty:
        await WatchlistSource(refresh=60.0).load()
    assert empty.value.usage


def _metric(name: str, label: str) -> float:
    return sample_sum(exposition().decode(), name, label)


async def test_re_reads_apply_changes_and_failures_keep_the_last_good_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "w.txt"
    path.write_text("HK.00700\nUS.AAPL\n")
    groups = Groups(Tech=["SH.600519"])
    source = WatchlistSource(
        file=str(path), group="Tech", refresh=60.0, read_group=groups.read
    )  # fmt: skip
    await source.load()
    added = _metric("capflow_watchlist_changes_total", 'change="added"')
    removed = _metric("capflow_watchlist_changes_total", 'change="removed"')
    failed = {
        s: _metric("capflow_watchlist_read_failures_total", f'source="{s}"')
        for s in ("file", "group")
    }
    assert await source.refresh() is None  # nothing changed

    path.write_text("HK.00700\nHK.09988\n")
    caplog.set_level(logging.INFO, "streams.polling.watchlist")
    change = await source.refresh()
    assert change is not None
    assert change.codes == ["HK.00700", "HK.09988", "SH.600519"]
    assert change.added == ["HK.09988"] and change.removed == ["US.AAPL"]
    assert "watchlist changed: 1 added (HK.09988), 1 removed (US.AAPL); 3 securities now" in (
        caplog.text
    )
    assert _metric("capflow_watchlist_changes_total", 'change="added"') == added + 1
    assert _metric("capflow_watchlist_changes_total", 'change="removed"') == removed + 1
    assert _metric("capflow_watchlist_securities", "") == 3

    # Caught half-written, then gone, the group deleted in the app, OpenD down: each
    # a warning, and the last good list of that source stays.
    for breakage in ("empty", "missing", "unknown group", "opend down"):
        if breakage == "empty":
            path.write_text("")
        elif breakage == "missing":
            path.unlink()
        elif breakage == "unknown group":
            groups.groups = {}
        else:
            groups.down = True
        assert await source.refresh() is None, breakage
        assert source.codes == ["HK.00700", "HK.09988", "SH.600519"]
    assert set(source.status()["failing"]) == {"file", "group"}  # type: ignore[arg-type]
    assert "watchlist file not re-read" in caplog.text
    assert "watchlist group not re-read" in caplog.text
    assert "its last good list of 1 securities stays" in caplog.text
    # The file stays missing while the group breaks: 4 failed reads of it, 2 of the group.
    assert _metric("capflow_watchlist_read_failures_total", 'source="file"') == failed["file"] + 4
    assert _metric("capflow_watchlist_read_failures_total", 'source="group"') == (
        failed["group"] + 2
    )

    # Mended: the next re-read takes the new lists.
    path.write_text("HK.00700\n")
    groups.down = False
    groups.groups = {"Tech": ["SH.600519", "SZ.000001"]}
    change = await source.refresh()
    assert change is not None and change.codes == ["HK.00700", "SH.600519", "SZ.000001"]
    assert change.added == ["SZ.000001"] and change.removed == ["HK.09988"]
    assert source.status()["failing"] == {} and source.status()["securities"] == 3


async def test_workers_re_read_at_the_same_wall_clock_instants(tmp_path: Path) -> None:
    """Every worker reads at the multiples of the refresh, whenever it started, and
    applies a list only when it changed."""
    start = 1_717_378_200.0 + 17.25  # 17.25 s after a whole minute
    clock = FakeClock(start, start + 200)
    groups = Groups(clock, Tech=["HK.00700"])
    source = WatchlistSource(
        group="Tech", refresh=60.0, read_group=groups.read, clock=clock, sleep=clock.sleep
    )  # fmt: skip
    await source.load()
    applied: list[tuple[float, list[str]]] = []

    async def edit() -> None:  # the user adds a security in the app
        while clock.now < start + 60:
            await asyncio.sleep(0)
        groups.groups["Tech"] = ["HK.00700", "HK.09988"]

    editing = asyncio.create_task(edit())
    with pytest.raises(Done):
        await source.run(lambda codes: applied.append((clock.now, codes)))
    editing.cancel()
    minute = 1_717_378_200.0
    assert groups.reads[1:] == [minute + 60, minute + 120, minute + 180]
    assert applied == [(minute + 120, ["HK.00700", "HK.09988"])]


async def test_nothing_to_re_read_without_a_file_or_a_group() -> None:
    source = WatchlistSource(["HK.00700"], refresh=60.0)
    await asyncio.wait_for(source.run(lambda codes: None), 1.0)  # returns at once
    assert not source.live


# -- the pool and the pollers take the new list ---------------------------------------------


async def test_the_pool_polls_the_new_list_from_the_moment_it_changes() -> None:
    clock = DeadlineClock(HK_OPEN, HK_OPEN + 300)
    owned = {0, 1}
    pool, fakes, _ = make_pool(clock, owned, grace=False)
    removed = WATCHLIST[:2]
    added = ["HK.00700", "HK.09988"]
    new = [*WATCHLIST[2:], *added]
    changed_at = HK_OPEN + 100

    async def change() -> None:
        while clock.now < changed_at:
            await asyncio.sleep(0)
        pool.set_watchlist(new)

    await pool.acquire(owned)
    changing = asyncio.create_task(change())
    tasks = [task for gp in pool.pollers.values() for task in gp.tasks]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    changing.cancel()
    assert all(isinstance(r, Done) for r in results), results
    before = {s for f in fakes.values() for t, s in f.requests if t < changed_at}
    assert set(removed) <= before  # they were polled until then
    for label, fake in fakes.items():
        after = {s for t, s in fake.requests if t > changed_at}
        # Each gateway polls exactly its share of the new list: the removed ones no
        # more, the added ones where the spread puts them.
        assert after == set(spread.share(new, ["a", "b"], label)), label
    assert pool.polling_status(clock.now)["watchlist"] == new
    statuses = pool.status()
    assert sorted(s for st in statuses for s in st["securities"]) == sorted(new)


async def test_a_removed_security_is_forgotten_and_an_added_one_gets_its_history_first() -> None:
    clock, published = FakeClock(ELEVEN), []
    client = FakeClient()
    history = fetcher(client, clock, published, window=300.0)
    scheduler = Adaptive(600.0, interval=1.0)
    snapshots: list[tuple[str, bytes]] = []

    async def publish(key: str, value: bytes) -> None:
        snapshots.append((key, value))

    async def no_sleep(_: float) -> None:
        return None

    poller = Poller(
        client, publish, ["HK.00001", "HK.00002"], SlidingWindowLimiter(30, 30.0, clock),
        ignore_market_hours=True, wall_clock=clock, sleep=no_sleep, scheduler=scheduler,
        history=history,
    )  # fmt: skip
    for security in ("HK.00001", "HK.00002"):
        history.planner.observe_flow(security, flow(security, clock.now, "none"))
        scheduler.observe_flow(security, flow(security, clock.now))
        await history.fetch(security)
        clock.now += 1
        await poller.step()
    poller.rejections.reject("HK.00001", "unknown", "unknown stock", clock.now)
    assert history.planner.waiting() == ["HK.00001", "HK.00002"]

    assert poller.set_watchlist(["HK.00002", "HK.00003"]) == ["HK.00001"]
    now = clock.now + 1
    assert poller.due(now) == ["HK.00002", "HK.00003"]
    assert "HK.00001" not in poller.stats.last_received and "HK.00001" not in poller.rejections
    assert history.planner.waiting() == ["HK.00002"] and history.ref("HK.00001") == 0
    assert scheduler.pending() == [] and "HK.00001" not in scheduler._tracks
    # The added one has no flow yet: the history budget goes to it first (after the one
    # whose flow lacks a baseline and that was fetched just now), and its first poll
    # names the series fetched for it.
    history.planner.fetched("HK.00002", now)
    assert history.planner.next(poller.due(now), now) == "HK.00003"
    assert history.planner.wants_before_poll("HK.00003", now)
