"""The live watchlist: ``--watchlist``, ``--watchlist-file`` and ``--watchlist-group``.

Three sources, combined (their union, in this order, each security once): the codes of
``--watchlist``, the lines of ``--watchlist-file`` (one code per line, ``#`` starts a
comment, blank lines ignored) and the securities of ``--watchlist-group``, a watchlist
group of the Futu/moomoo app that OpenD serves (Qot_GetUserSecurity, 3213). Codes are
read like everywhere else (``streams.domain.market``): "hk.00700" is HK.00700.

The file and the group are read again every ``refresh`` seconds, at the same wall-clock
instants on every worker (multiples of ``refresh`` since the epoch): every worker of a
group computes the spread over the gateways from its own copy of the list, so they
switch together, apart from the time a read takes and their clocks' disagreement.

A source that gives no usable list (a missing file, a file without a code or with a bad
one, an unknown or empty group, OpenD not answering) is an error at start:
:meth:`WatchlistSource.load` raises :class:`WatchlistError`. Later it is a warning and
that source keeps its last good list, so a file caught half-written or an OpenD restart
removes nothing. Time is an injected clock and sleep (tests run it on a fake one); the
group is read through an injected coroutine (``group_reader`` over an OpenD client).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from streams.domain.market import SecurityFormatError, parse_security
from streams.observability.metrics import (
    WATCHLIST_CHANGES,
    WATCHLIST_READ_FAILURES,
    WATCHLIST_SECURITIES,
)
from streams.opend.errors import ConnectionLost, OpenDError, RequestTimeout, UnknownGroupError

log = logging.getLogger(__name__)

FILE_HELP = "one code per line, # comments, blank lines ignored"


class WatchlistError(Exception):
    """A watchlist source gives no usable list.

    ``usage``: the value cannot work (a bad code, an empty file, an unknown group; exit 2
    at start); otherwise the source could not be read (a missing file, OpenD not
    answering; exit 1 at start).
    """

    def __init__(self, message: str, *, usage: bool) -> None:
        super().__init__(message)
        self.usage = usage


def canonical_codes(codes: Iterable[str], origin: str) -> list[str]:
    """``codes`` as "MARKET.CODE", each once, in their order; WatchlistError names every
    bad one."""
    found: list[str] = []
    bad: list[str] = []
    for code in codes:
        try:
            found.append(str(parse_security(code)))
        except SecurityFormatError as exc:
            bad.append(str(exc))
    if bad:
        raise WatchlistError(f"bad watchlist ({origin}):\n  " + "\n  ".join(bad), usage=True)
    return list(dict.fromkeys(found))


def parse_watchlist_text(text: str, origin: str) -> list[str]:
    """The codes of a watchlist file's text, each once, in file order.

    One code per line; ``#`` starts a comment; blank lines are ignored. A bad code is
    named with its line; a text without any code is an error too (an empty file is far
    more likely a mistake, or a file caught half-written, than a wish to poll nothing).
    """
    codes: list[str] = []
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0].strip()
        if not code:
            continue
        try:
            codes.append(str(parse_security(code)))
        except SecurityFormatError as exc:
            bad.append(f"{origin}:{number}: {exc}")
    if bad:
        raise WatchlistError("bad watchlist file:\n  " + "\n  ".join(bad), usage=True)
    if not codes:
        raise WatchlistError(f"{origin}: no security in the file ({FILE_HELP})", usage=True)
    return list(dict.fromkeys(codes))


def read_watchlist_file(path: str) -> list[str]:
    """The codes of the watchlist file at ``path`` (see :func:`parse_watchlist_text`)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WatchlistError(f"{path}: not UTF-8 text ({exc.reason})", usage=True) from None
    except OSError as exc:
        raise WatchlistError(f"{path}: cannot read: {exc.strerror or exc}", usage=False) from None
    return parse_watchlist_text(text, path)


ReadGroup = Callable[[str], Awaitable[list[str]]]


class UserSecuritySource(Protocol):
    """What reading a watchlist group needs of an OpenD client."""

    async def ensure_connected(self, max_attempts: int | None = None) -> None: ...

    async def get_user_security(self, group: str, timeout: float | None = None) -> list[str]: ...


def group_reader(client: UserSecuritySource) -> ReadGroup:
    """Read a group through ``client``, connecting first (one attempt) if needed."""

    async def read(group: str) -> list[str]:
        await client.ensure_connected(1)
        return await client.get_user_security(group)

    return read


@dataclass(frozen=True)
class Change:
    """What a re-read changed: the new list, and the securities added and removed."""

    codes: list[str]
    added: list[str]
    removed: list[str]


class WatchlistSource:
    """The union of the three sources, re-read every ``refresh`` seconds (see the module
    docstring). ``clock`` and ``sleep`` are wall-clock time (injected by tests)."""

    def __init__(
        self,
        codes: Sequence[str] = (),
        file: str = "",
        group: str = "",
        *,
        refresh: float,
        read_group: ReadGroup | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if group and read_group is None:
            raise ValueError("a watchlist group needs a way to read it (read_group)")
        if not refresh > 0:
            raise ValueError(f"refresh must be > 0, got {refresh}")
        self.static = canonical_codes(codes, "--watchlist")
        self.file = file
        self.group = group
        self.read_group = read_group
        self.refresh_s = refresh
        self.clock = clock
        self.sleep = sleep
        self._file_codes: list[str] = []  # the last good list of each source
        self._group_codes: list[str] = []
        self.codes: list[str] = list(self.static)
        self.failing: dict[str, str] = {}  # source ("file", "group") -> why its read failed

    @property
    def live(self) -> bool:
        """Whether anything is re-read (a file or a group)."""
        return bool(self.file or self.group)

    def describe(self) -> str:
        """The sources, for the worker's first line and logs."""
        parts = ["--watchlist"] if self.static else []
        if self.file:
            parts.append(f"file {self.file}")
        if self.group:
            parts.append(f"group {self.group!r}")
        every = f", re-read every {self.refresh_s:g}s" if self.live else ""
        return f"{len(self.codes)} securities from {' + '.join(parts) or 'nothing'}{every}"

    def status(self) -> dict[str, object]:
        """For ``/status/``: the list's size, its sources, and the ones failing now."""
        return {
            "securities": len(self.codes),
            "sources": self.describe(),
            "failing": dict(self.failing),
        }

    async def load(self) -> list[str]:
        """Read every source once; WatchlistError for the first that fails, or when the
        union is empty (the check at start)."""
        if self.file:
            self._file_codes = read_watchlist_file(self.file)
        if self.group:
            self._group_codes = await self._read_group()
        self.codes = self._union()
        if not self.codes:
            raise WatchlistError(
                "the watchlist is empty: give --watchlist, --watchlist-file or "
                "--watchlist-group (CAPFLOW_WATCHLIST, CAPFLOW_WATCHLIST_FILE, "
                "CAPFLOW_WATCHLIST_GROUP)",
                usage=True,
            )
        WATCHLIST_SECURITIES.set(len(self.codes))
        return self.codes

    async def _read_group(self) -> list[str]:
        assert self.read_group is not None
        name = f"--watchlist-group {self.group!r}"
        try:
            codes = await self.read_group(self.group)
        except UnknownGroupError as exc:
            raise WatchlistError(
                f"{name}: OpenD has no such watchlist group ({exc.ret_msg})", usage=True
            ) from None
        except OpenDError as exc:
            raise WatchlistError(f"{name}: OpenD refused: {exc.ret_msg}", usage=False) from None
        except (ConnectionLost, RequestTimeout, OSError) as exc:
            raise WatchlistError(f"{name}: cannot ask OpenD: {exc}", usage=False) from None
        if not codes:
            raise WatchlistError(f"{name}: the group holds no security", usage=True)
        return canonical_codes(codes, name)

    def _union(self) -> list[str]:
        return list(dict.fromkeys([*self.static, *self._file_codes, *self._group_codes]))

    async def refresh(self) -> Change | None:
        """Read the file and the group again; a source that fails keeps its last good list
        (with a warning). The change, or None when the list is the same."""
        if self.file:
            try:
                self._file_codes = read_watchlist_file(self.file)
                self.failing.pop("file", None)
            except WatchlistError as exc:
                self._kept("file", exc, self._file_codes)
        if self.group:
            try:
                self._group_codes = await self._read_group()
                self.failing.pop("group", None)
            except WatchlistError as exc:
                self._kept("group", exc, self._group_codes)
        new = self._union()
        if new == self.codes or not new:
            return None
        before = set(self.codes)
        after = set(new)
        change = Change(
            new, [s for s in new if s not in before], [s for s in self.codes if s not in after]
        )
        self.codes = new
        WATCHLIST_SECURITIES.set(len(new))
        WATCHLIST_CHANGES.labels("added").inc(len(change.added))
        WATCHLIST_CHANGES.labels("removed").inc(len(change.removed))
        if change.added or change.removed:
            log.info(
                "watchlist changed: %d added (%s), %d removed (%s); %d securities now",
                len(change.added),
                ", ".join(change.added) or "-",
                len(change.removed),
                ", ".join(change.removed) or "-",
                len(new),
            )
        return change

    def _kept(self, source: str, exc: WatchlistError, codes: list[str]) -> None:
        self.failing[source] = str(exc)
        WATCHLIST_READ_FAILURES.labels(source).inc()
        log.warning(
            "watchlist %s not re-read (%s); its last good list of %d securities stays",
            source,
            exc,
            len(codes),
        )

    def next_read(self, now: float) -> float:
        """The next re-read instant after ``now``: the next multiple of ``refresh``."""
        return (math.floor(now / self.refresh_s) + 1) * self.refresh_s

    async def run(self, apply: Callable[[list[str]], None]) -> None:
        """Re-read at every instant of :meth:`next_read` and ``apply`` each new list
        (until cancelled); nothing to do without a file or a group."""
        if not self.live:
            return
        while True:
            now = self.clock()
            await self.sleep(self.next_read(now) - now)
            try:
                change = await self.refresh()
            except Exception:  # a reply nobody foresaw must not stop polling
                log.exception("watchlist re-read failed; the last good list stays")
                continue
            if change is not None:
                apply(change.codes)
