"""Alert messages for chat incoming webhooks: Slack, Discord and Telegram's Bot API.

Each format builds the JSON body its service documents for posting a message:

- Slack incoming webhook: ``text`` (the notification fallback, mrkdwn) plus ``blocks``
  (header, section with fields, context);
- Discord webhook (Execute Webhook): ``content`` (at most 2000 characters) plus one
  entry in ``embeds``, with ``allowed_mentions`` empty so an alert never pings anyone;
- Telegram ``sendMessage``: ``chat_id``, ``text`` (at most 4096 characters) and
  ``parse_mode`` "HTML".

Values that come from the topic are escaped for each markup and clipped, so a
strange security code can neither break the markup nor push a message over the
service's limits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from streams.settings import CHAT_FORMATS
from streams.sinks.console import alert_currency, format_time, human_amount, with_currency
from streams.sinks.http import HttpPoster, PostingSink, Request, redact_url

FORMATS = CHAT_FORMATS
DISCORD_CONTENT_MAX = 2000
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
DISCORD_FIELD_VALUE_MAX = 1024
TELEGRAM_TEXT_MAX = 4096
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
FIELD_MAX = 64  # any single value taken from the alert

_LABELS = {
    "inflow_to_outflow": "inflow \u2192 outflow",
    "outflow_to_inflow": "outflow \u2192 inflow",
}
_EMOJI = {"inflow_to_outflow": "\U0001f53b", "outflow_to_inflow": "\U0001f53a"}
_DISCORD_COLOURS = {"inflow_to_outflow": 0xE74C3C, "outflow_to_inflow": 0x2ECC71}
_TELEGRAM_CHAT = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "\u2026"


@dataclass(frozen=True)
class Facts:
    """The parts of an alert every chat message shows, already as short plain strings."""

    alert_id: str
    security: str
    direction: str
    label: str
    emoji: str
    when: str
    trading_day: str
    r_w: str
    window: str
    threshold: str
    previous: str

    @classmethod
    def of(cls, event: dict[str, Any]) -> Facts:
        data = event.get("data") or {}
        direction = clip(str(data.get("direction") or "?"), FIELD_MAX)
        window = data.get("window_s")
        window_text = f"{float(window):g}s" if isinstance(window, int | float) else "W"
        threshold = data.get("threshold")
        previous = str(data.get("previous_regime") or "?").lower()
        currency = alert_currency(event)  # every amount below is in it
        theta = "?" if threshold is None else human_amount(threshold).lstrip("+")
        peak = with_currency(human_amount(data.get("previous_peak")), currency)
        return cls(
            alert_id=clip(str(event.get("id") or data.get("alert_id") or "?"), FIELD_MAX),
            security=clip(str(data.get("security") or event.get("subject") or "?"), FIELD_MAX),
            direction=direction,
            label=_LABELS.get(direction, direction),
            emoji=_EMOJI.get(direction, "\u2757"),
            when=format_time(event),
            trading_day=clip(str(data.get("trading_day") or "?"), FIELD_MAX),
            r_w=with_currency(human_amount(data.get("r_w")), currency),
            window=window_text,
            threshold=theta if threshold is None else with_currency(theta, currency),
            previous=f"{clip(previous, FIELD_MAX)} peak {peak}",
        )

    @property
    def title(self) -> str:
        return f"{self.security}: large-order flow reversed, {self.label}"

    @property
    def summary(self) -> str:
        return (
            f"{self.security} {self.label}: R_{self.window} {self.r_w} "
            f"(threshold \u00b1{self.threshold}), previous {self.previous}, at {self.when}"
        )


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(event: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook body: ``text`` fallback plus Block Kit ``blocks``."""
    f = Facts.of(event)
    esc = _slack_escape
    fields = [
        f"*R_{f.window}*\n{f.r_w}",
        f"*Threshold*\n\u00b1{esc(f.threshold)}",
        f"*Previous regime*\n{esc(f.previous)}",
        f"*Event time*\n{esc(f.when)}",
    ]
    return {
        "text": clip(f"{f.emoji} {esc(f.summary)}", SLACK_TEXT_MAX),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": clip(f.title, SLACK_HEADER_MAX)},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": clip(f"{f.emoji} *{esc(f.security)}* {esc(f.label)}", SLACK_TEXT_MAX),
                },
                "fields": [{"type": "mrkdwn", "text": text} for text in fields],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"trading day {esc(f.trading_day)} \u00b7 "
                        f"alert id `{esc(f.alert_id)}`",
                    }
                ],
            },
        ],
    }


_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|])")


def _discord_escape(text: str) -> str:
    return _DISCORD_MARKDOWN.sub(r"\\\1", text)


def discord_message(event: dict[str, Any]) -> dict[str, Any]:
    """Discord Execute Webhook body: short ``content`` and one embed with the numbers."""
    f = Facts.of(event)
    data = event.get("data") or {}
    embed: dict[str, Any] = {
        "title": clip(f.title, DISCORD_TITLE_MAX),
        "description": clip(_discord_escape(f.summary), DISCORD_DESCRIPTION_MAX),
        "color": _DISCORD_COLOURS.get(f.direction, 0x95A5A6),
        "fields": [
            {"name": f"R_{f.window}", "value": f.r_w, "inline": True},
            {"name": "Threshold", "value": f"\u00b1{f.threshold}", "inline": True},
            {
                "name": "Previous regime",
                "value": clip(_discord_escape(f.previous), DISCORD_FIELD_VALUE_MAX),
                "inline": True,
            },
            {
                "name": "Trading day",
                "value": clip(_discord_escape(f.trading_day), DISCORD_FIELD_VALUE_MAX),
                "inline": True,
            },
        ],
        "footer": {"text": f"alert id {f.alert_id}"},
    }
    timestamp = event.get("time")
    if isinstance(timestamp, str) and data:
        embed["timestamp"] = timestamp
    content = f"{f.emoji} **{_discord_escape(f.security)}** {_discord_escape(f.label)}"
    return {
        "content": clip(content, DISCORD_CONTENT_MAX),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def telegram_chat_id(value: str) -> int | str:
    """A numeric chat id as int, a ``@channel`` as str; ValueError for anything else."""
    value = value.strip()
    if not _TELEGRAM_CHAT.match(value):
        raise ValueError(f"expected a numeric chat id or @channelusername, got {value!r}")
    return value if value.startswith("@") else int(value)


def telegram_message(event: dict[str, Any], chat_id: int | str) -> dict[str, Any]:
    """Telegram Bot API ``sendMessage`` body with an HTML-formatted text."""
    f = Facts.of(event)
    lines = [
        f"{f.emoji} <b>{_html(f.security)}</b> {_html(f.label)}",
        f"R_{f.window}: <b>{_html(f.r_w)}</b> (threshold \u00b1{_html(f.threshold)})",
        f"previous regime: {_html(f.previous)}",
        f"at {_html(f.when)}, trading day {_html(f.trading_day)}",
        f"id <code>{_html(f.alert_id)}</code>",
    ]
    text = "\n".join(lines)
    if len(text) > TELEGRAM_TEXT_MAX:  # cannot happen with clipped facts; stay valid anyway
        text = _html(clip(f.summary, TELEGRAM_TEXT_MAX // 6))
    return {"chat_id": chat_id, "text": text, "parse_mode": "HTML"}


def body_retry_after(status: int, text: str) -> float | None:
    """The delay Telegram (``parameters.retry_after``) or Discord (``retry_after``) asks for."""
    if status != 429:
        return None
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    value = body.get("retry_after")
    params = body.get("parameters")
    if value is None and isinstance(params, dict):
        value = params.get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return min(float(value), 300.0)
    return None


class ChatSink(PostingSink):
    """POST one chat message per alert to an incoming webhook (or the Bot API URL)."""

    def __init__(
        self,
        url: str,
        fmt: str,
        *,
        telegram_chat: int | str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown chat format {fmt!r}; expected one of {', '.join(FORMATS)}")
        if fmt == "telegram" and telegram_chat is None:
            raise ValueError("the telegram format needs a chat id")
        self.kind = fmt
        self.target = redact_url(url)
        self.poster = HttpPoster(url, timeout, body_retry_after=body_retry_after)
        render: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "slack": slack_message,
            "discord": discord_message,
            "telegram": lambda event: telegram_message(event, telegram_chat or ""),
        }
        self.render = render[fmt]

    async def deliver_once(self, event: dict[str, Any]) -> None:
        body = orjson.dumps(self.render(event))
        headers = {"Content-Type": "application/json", "User-Agent": "capflow-chat/1"}
        await self.poster.post(Request(body, headers))
