"""Slack, Discord and Telegram bodies: the shapes those services document, within limits.

Each receiver below checks a delivery the way the service would reject it (missing
required fields, wrong types, over-long text, unknown HTML tags) and answers like
the service does.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sinks.chat import (
    DISCORD_CONTENT_MAX,
    TELEGRAM_TEXT_MAX,
    ChatSink,
    body_retry_after,
    discord_message,
    slack_message,
    telegram_chat_id,
    telegram_message,
)
from streams.sinks.http import DeliveryError
from tests.unit.test_console_sink import make_alert

TOKEN = "123456:ABC-DEF_secret"


def slack_problems(body: Any) -> list[str]:
    """What Slack's incoming webhook would reject (``invalid_payload`` / ``invalid_blocks``)."""
    out: list[str] = []
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
        return ["text must be a non-empty string (it is the notification fallback)"]
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return ["blocks must be a list of at most 50"]
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                out.append("header needs plain_text of 1..150 chars")
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields", [])
            if text is None and not fields:
                out.append("section needs text or fields")
            if text is not None and (
                text.get("type") not in ("mrkdwn", "plain_text") or len(text.get("text", "")) > 3000
            ):
                out.append("section text must be mrkdwn/plain_text <= 3000")
            if len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields):
                out.append("at most 10 fields of <= 2000 chars")
        elif kind == "context":
            elements = block.get("elements", [])
            if not 0 < len(elements) <= 10:
                out.append("context needs 1..10 elements")
        else:
            out.append(f"unexpected block type {kind!r}")
    return out


def discord_problems(body: Any) -> list[str]:
    """What Discord's Execute Webhook answers 400 for."""
    if not isinstance(body, dict):
        return ["body must be an object"]
    content, embeds = body.get("content"), body.get("embeds")
    out: list[str] = []
    if not content and not embeds:
        out.append("one of content or embeds is required")
    if content is not None and (not isinstance(content, str) or len(content) > 2000):
        out.append("content must be a string of at most 2000 characters")
    if embeds is not None:
        if not isinstance(embeds, list) or len(embeds) > 10:
            return [*out, "embeds must be a list of at most 10"]
        total = 0
        for embed in embeds:
            title, desc = embed.get("title", ""), embed.get("description", "")
            if len(title) > 256 or len(desc) > 4096:
                out.append("embed title <= 256, description <= 4096")
            if not isinstance(embed.get("color", 0), int):
                out.append("embed color must be an integer")
            fields = embed.get("fields", [])
            if len(fields) > 25:
                out.append("at most 25 fields")
            for f in fields:
                if not (0 < len(f["name"]) <= 256 and 0 < len(f["value"]) <= 1024):
                    out.append("field name 1..256, value 1..1024")
            footer = embed.get("footer", {}).get("text", "")
            total += len(title) + len(desc) + len(footer)
            total += sum(len(f["name"]) + len(f["value"]) for f in fields)
        if total > 6000:
            out.append("embeds may hold at most 6000 characters in total")
    return out


class _TelegramHTML(HTMLParser):
    ALLOWED = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.stack: list[str] = []
        self.chars = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in self.ALLOWED:
            self.problems.append(f"unsupported tag <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.chars += len(data)


def telegram_problems(body: Any) -> list[str]:
    """What the Bot API's sendMessage answers 400 Bad Request for."""
    if not isinstance(body, dict):
        return ["body must be an object"]
    out: list[str] = []
    chat = body.get("chat_id")
    if isinstance(chat, bool) or not isinstance(chat, int | str):
        out.append("chat_id must be an integer or a string")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return [*out, "text must be a non-empty string"]
    if body.get("parse_mode") not in (None, "HTML", "MarkdownV2", "Markdown"):
        out.append("unknown parse_mode")
    if body.get("parse_mode") == "HTML":
        parser = _TelegramHTML()
        parser.feed(text)
        parser.close()
        out += parser.problems
        if parser.stack:
            out.append("unclosed tags")
        if re.search(r"&(?!amp;|lt;|gt;|quot;|#\d+;)", text):
            out.append("bare & in HTML text")
        if not 0 < parser.chars <= 4096:
            out.append("text must be 1-4096 characters after entities parsing")
    elif len(text) > 4096:
        out.append("text must be 1-4096 characters")
    return out


@dataclass
class Service:
    """One local stand-in service: validates each body and answers as the service does."""

    answers: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    base: str = ""


def _make_app(service: Service) -> web.Application:
    async def take(request: web.Request, check: Any) -> web.Response | None:
        body = orjson.loads(await request.read())
        service.bodies.append(body)
        service.content_types.append(request.headers.get("Content-Type", ""))
        found = check(body)
        service.problems += found
        if service.answers:
            status, headers, text = service.answers.pop(0)
            return web.Response(status=status, headers=headers, text=text)
        return web.Response(status=400, text="; ".join(found)) if found else None

    async def slack(request: web.Request) -> web.Response:
        answer = await take(request, slack_problems)
        return answer or web.Response(text="ok", content_type="text/plain")

    async def discord(request: web.Request) -> web.Response:
        answer = await take(request, discord_problems)
        return answer or web.Response(status=204)

    async def telegram(request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        answer = await take(request, telegram_problems)
        return answer or web.json_response({"ok": True, "result": {"message_id": 1}})

    app = web.Application()
    app.router.add_post("/services/T000/B000/XXXX", slack)
    app.router.add_post("/api/webhooks/1/tok", discord)
    app.router.add_post("/bot{token}/sendMessage", telegram)
    return app


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    svc = Service()
    runner = web.AppRunner(_make_app(svc))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    svc.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield svc
    await runner.cleanup()


async def test_slack_delivery_has_the_documented_shape(service: Service) -> None:
    async with ChatSink(f"{service.base}/services/T000/B000/XXXX", "slack") as sink:
        await sink.deliver_once(make_alert())
    assert service.problems == [] and service.content_types == ["application/json"]
    body = service.bodies[0]
    assert set(body) == {"text", "blocks"}
    assert "HK.00700" in body["text"] and "-12.3M HKD" in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    assert "0123456789abcdef0123456789abcdef" in body["blocks"][2]["elements"][0]["text"]


async def test_discord_delivery_has_the_documented_shape(service: Service) -> None:
    async with ChatSink(f"{service.base}/api/webhooks/1/tok", "discord") as sink:
        await sink.deliver_once(make_alert(direction="outflow_to_inflow"))
    assert service.problems == []
    body = service.bodies[0]
    assert body["allowed_mentions"] == {"parse": []}  # an alert never pings anyone
    embed = body["embeds"][0]
    assert embed["color"] == 0x2ECC71 and embed["timestamp"] == "2026-11-25T01:40:00Z"
    assert "HK.00700" in body["content"] and len(body["content"]) <= DISCORD_CONTENT_MAX


async def test_telegram_delivery_has_the_documented_shape(service: Service) -> None:
    url = f"{service.base}/bot{TOKEN}/sendMessage"
    async with ChatSink(url, "telegram", telegram_chat=-1001234567890) as sink:
        assert sink.target == service.base  # the token never shows in logs or headers
        await sink.deliver_once(make_alert())
    assert service.problems == []
    body = service.bodies[0]
    assert set(body) == {"chat_id", "text", "parse_mode"}
    assert body["chat_id"] == -1001234567890 and body["parse_mode"] == "HTML"
    assert "<b>HK.00700</b>" in body["text"]


async def test_rate_limit_answers_give_the_delay_the_service_asks_for(service: Service) -> None:
    telegram_429 = orjson.dumps(
        {"ok": False, "error_code": 429, "parameters": {"retry_after": 3}}
    ).decode()
    service.answers = [(429, {"Content-Type": "application/json"}, telegram_429)]
    async with ChatSink(f"{service.base}/bot{TOKEN}/sendMessage", "telegram", telegram_chat=5) as s:
        with pytest.raises(DeliveryError) as info:
            await s.deliver_once(make_alert())
    assert info.value.retryable and info.value.retry_after == 3.0

    service.answers = [(429, {"Retry-After": "2"}, '{"retry_after": 9.5, "global": false}')]
    async with ChatSink(f"{service.base}/api/webhooks/1/tok", "discord") as s:
        with pytest.raises(DeliveryError) as info:
            await s.deliver_once(make_alert())
    assert info.value.retry_after == 2.0  # the header wins over the body

    service.answers = [(404, {}, "no_service")]
    async with ChatSink(f"{service.base}/services/T000/B000/XXXX", "slack") as s:
        with pytest.raises(DeliveryError) as info:
            await s.deliver_once(make_alert())
    assert not info.value.retryable and "XXXX" not in str(info.value)


def test_every_amount_names_the_currency() -> None:
    """R_W, threshold and previous peak, in each format; a written currency wins."""
    us = make_alert(security="US.AAPL", market="US", currency="USD")
    slack = slack_message(us)
    fields = " ".join(f["text"] for f in slack["blocks"][1]["fields"])
    assert "-12.3M USD" in fields and "\u00b14.2M USD" in fields and "+25.6M USD" in fields
    assert "R_300s -12.3M USD (threshold \u00b14.2M USD)" in slack["text"]
    discord = discord_message(us)["embeds"][0]
    assert [f["value"] for f in discord["fields"][:2]] == ["-12.3M USD", "\u00b14.2M USD"]
    text = telegram_message(us, 1)["text"]
    assert "<b>-12.3M USD</b>" in text and "peak +25.6M USD" in text
    # An alert written before alerts named a currency: the market's, from the table.
    assert "-12.3M HKD" in slack_message(make_alert())["text"]
    # No currency and no known market: the amounts stand alone.
    unknown = slack_message(make_alert(security="XX.1", market="XX"))["text"]
    assert "R_300s -12.3M (threshold \u00b14.2M)" in unknown


def test_body_retry_after() -> None:
    assert body_retry_after(429, '{"retry_after": 1.5}') == 1.5
    assert body_retry_after(429, '{"parameters": {"retry_after": 4}}') == 4.0
    assert body_retry_after(429, "not json") is None
    assert body_retry_after(429, '{"retry_after": true}') is None
    assert body_retry_after(500, '{"retry_after": 1}') is None


def test_telegram_chat_ids() -> None:
    assert telegram_chat_id("-1001234567890") == -1001234567890
    assert telegram_chat_id(" 42 ") == 42
    assert telegram_chat_id("@capflow_alerts") == "@capflow_alerts"
    for bad in ("", "abc", "@ab", "12a", "@bad-name"):
        with pytest.raises(ValueError, match="numeric chat id"):
            telegram_chat_id(bad)


def test_chat_sink_arguments() -> None:
    with pytest.raises(ValueError, match="unknown chat format"):
        ChatSink("http://127.0.0.1/x", "teams")
    with pytest.raises(ValueError, match="needs a chat id"):
        ChatSink("http://127.0.0.1/x", "telegram")


hostile_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=5000
)
numbers = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**30), 10**30)
)


@settings(max_examples=150, deadline=None)
@given(
    security=hostile_text,
    direction=st.one_of(st.sampled_from(["inflow_to_outflow", "outflow_to_inflow"]), hostile_text),
    r_w=numbers,
    threshold=numbers,
    regime=hostile_text,
    day=hostile_text,
)
def test_any_alert_gives_valid_messages_within_limits(
    security: str, direction: str, r_w: Any, threshold: Any, regime: str, day: str
) -> None:
    event = make_alert(
        security=security,
        direction=direction,
        r_w=r_w,
        threshold=threshold,
        previous_regime=regime,
        trading_day=day,
    )
    assert slack_problems(slack_message(event)) == []
    assert discord_problems(discord_message(event)) == []
    body = telegram_message(event, -100)
    assert telegram_problems(body) == []
    assert len(body["text"]) <= TELEGRAM_TEXT_MAX


def test_the_receivers_checks_can_fail() -> None:
    assert slack_problems({"blocks": []})
    assert slack_problems({"text": "x", "blocks": [{"type": "header", "text": {"text": "x"}}]})
    assert discord_problems({"content": "x" * 2001})
    assert discord_problems({"embeds": [{"title": "t" * 257}]})
    assert discord_problems({})
    assert telegram_problems({"chat_id": 1, "text": "<b>HK.00700", "parse_mode": "HTML"})
    assert telegram_problems({"chat_id": 1, "text": "<x>a</x>", "parse_mode": "HTML"})
    assert telegram_problems({"chat_id": 1, "text": "a & b", "parse_mode": "HTML"})
    assert telegram_problems({"chat_id": 1.5, "text": "x" * 4097})
