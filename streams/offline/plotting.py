"""Draw one security's trading day: large-order net flow, R_W, threshold band, alerts.

Pure functions over the JSON dicts of ``capflow.flow.v1`` and ``capflow.alerts.v1``
so the picture can be produced (and tested) from files without Kafka.
matplotlib is an optional dependency (``capflow[plot]``) and is imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.domain.market import market_zone


class PlotDataError(ValueError):
    """Nothing to draw: no flow records for the security / day asked for."""


def alert_data(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert payload, whether given the CloudEvents envelope or its ``data``."""
    data = alert.get("data")
    return data if isinstance(data, dict) else alert


def _security_of_alert(alert: dict[str, Any]) -> str | None:
    data = alert_data(alert)
    return data.get("security") or alert.get("subject")


def select_day(
    flows: Iterable[dict[str, Any]],
    alerts: Iterable[dict[str, Any]],
    security: str,
    day: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Records of ``security`` on ``day`` (default: latest day with flows), time-ordered.

    Alerts are deduplicated by id.
    """
    own_flows = [f for f in flows if f.get("security") == security]
    if not own_flows:
        raise PlotDataError(f"no flow records for {security}")
    days = sorted({str(f.get("trading_day")) for f in own_flows if f.get("trading_day")})
    chosen = day or (days[-1] if days else "")
    if chosen not in days:
        seen = ", ".join(days) or "none"
        raise PlotDataError(f"no flow records for {security} on {chosen} (days seen: {seen})")
    day_flows = sorted(
        (f for f in own_flows if f.get("trading_day") == chosen),
        key=lambda f: float(f.get("event_ts") or 0.0),
    )
    unique: dict[str, dict[str, Any]] = {}
    for a in alerts:  # ids are deterministic: a re-emitted alert is the same alert
        if _security_of_alert(a) != security or alert_data(a).get("trading_day") != chosen:
            continue
        key = str(a.get("id") or alert_data(a).get("alert_id") or id(a))
        unique.setdefault(key, a)
    day_alerts = sorted(unique.values(), key=lambda a: float(alert_data(a).get("event_ts") or 0.0))
    return day_flows, day_alerts, chosen


def _zone(market: str | None, security: str) -> Any:
    return market_zone(market, security) or UTC


def _import_pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "capflow plot needs matplotlib: pip install 'capflow[plot]' (or matplotlib)"
        ) from exc
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def render_day(
    flows: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Write a PNG for one security-day and return its path.

    Top panel: cumulative large net L. Bottom panel: R_W with the +/- threshold band
    and the regime it implies. Alerts are drawn as markers on both panels.
    """
    if not flows:
        raise PlotDataError("no flow records to plot")
    flows = sorted(flows, key=lambda f: _number(f.get("event_ts")))
    first = flows[0]
    security = str(first.get("security") or "?")
    zone = _zone(first.get("market"), security)

    def when(ts: Any) -> datetime:
        return datetime.fromtimestamp(_number(ts), tz=UTC).astimezone(zone)

    times = [when(f.get("event_ts")) for f in flows]
    large = [_number(f.get("large_net")) for f in flows]
    r_w = [_number((f.get("change") or {}).get("large")) for f in flows]
    theta = [_number(f.get("threshold")) for f in flows]
    neg_theta = [-t for t in theta]
    window = first.get("window_s")

    plt = _import_pyplot()
    import matplotlib.dates as mdates

    fig, (ax_l, ax_r) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, constrained_layout=True)
    try:
        ax_l.plot(times, large, color="#1f4e79", linewidth=1.4, label="large net L (super+big)")
        ax_l.axhline(0.0, color="#888888", linewidth=0.8)
        ax_l.set_ylabel("cumulative large net")
        ax_l.grid(True, alpha=0.3)

        ax_r.fill_between(
            times,
            neg_theta,
            theta,
            color="#bbbbbb",
            alpha=0.35,
            step="post",
            label="\u00b1 threshold",
        )
        ax_r.plot(times, r_w, color="#6a3d9a", linewidth=1.3, label="R_W", drawstyle="steps-post")
        ax_r.axhline(0.0, color="#888888", linewidth=0.8)
        win_text = f"{float(window):g}s" if isinstance(window, int | float) else "W"
        ax_r.set_ylabel(f"R_W (W = {win_text})")
        ax_r.grid(True, alpha=0.3)

        styles = {
            "inflow_to_outflow": ("v", "#c0392b", "inflow \u2192 outflow"),
            "outflow_to_inflow": ("^", "#1e8449", "outflow \u2192 inflow"),
        }
        labelled: set[str] = set()
        for alert in alerts:
            data = alert_data(alert)
            direction = str(data.get("direction"))
            marker, colour, label = styles.get(direction, ("o", "#333333", direction))
            t = when(data.get("event_ts"))
            show = label if direction not in labelled else None
            labelled.add(direction)
            for ax in (ax_l, ax_r):
                ax.axvline(t, color=colour, linestyle="--", linewidth=0.9, alpha=0.7)
            ax_r.scatter(
                [t],
                [_number(data.get("r_w"))],
                marker=marker,
                s=90,
                color=colour,
                edgecolors="black",
                zorder=5,
                label=show,
            )
            ax_l.scatter(
                [t],
                [_number(data.get("large_net"))],
                marker=marker,
                s=70,
                color=colour,
                edgecolors="black",
                zorder=5,
            )

        ax_l.legend(loc="upper left", fontsize=8)
        ax_r.legend(loc="upper left", fontsize=8)
        ax_r.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))
        ax_r.set_xlabel(f"time ({getattr(zone, 'key', 'UTC')})")
        day = first.get("trading_day") or times[0].strftime("%Y-%m-%d")
        fig.suptitle(title or f"{security} {day}: large-order flow, {len(alerts)} alert(s)")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out
