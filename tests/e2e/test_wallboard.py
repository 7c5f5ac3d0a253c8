"""The wallboard page in headless Chromium (Playwright driving Debian's /usr/bin/chromium).

1. On the real stack: scripted conversations for two fresh queues of a fresh shop go in through
   ingest; the page, filtered to that shop with its drop-down, must show the hand-computed figures,
   the data's age, the language switch, the alert banner rule, and go grey when its connection is
   cut (a TCP relay between browser and API, closed and then reopened: it must reconnect by itself).
2. On the API app served in-process over a hand-filled view store: "no data" is "—", data whose
   `as_of` is old greys the board while the stream is up, and an alert mirrored by the API's alert
   store appears in the summary at once (through the stream) with its current value, and goes when
   resolved.
3. On the real stack, a big floor at peak through ingest: 40 active queues, 30 firing alerts and 3
   quiet queues, looked at on a saved board (`?group=`) at 1920×1080 and 3840×2160 as a person would:
   the pages turn by themselves, no page scrolls or has anything off screen, type is never below
   docs/wallboard.md's minimum, every active queue is on some page, the most urgent first, the quiet
   ones in one line, the alert summary counts as the API does and shows each alert's value now.
4. On the API app over a hand-filled store (30 queues, a laptop screen): rows ordered by the oldest
   wait hold their places while waits tick up or cross by seconds, a queue turning critical goes to
   the top; saved boards (`?queues=` with a wildcard, `?group=`) show only their queues.

Screenshots: test-artifacts/wallboard.png (the live board) and wallboard-<w>x<h>-page<n>.png (the big
floor, every page at both sizes).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pytest
import uvicorn
from playwright.async_api import Locator, Page, async_playwright

from services.api.alerts import AlertStore
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.views import ViewStore
from services.core.alert_config import thresholds_for
from services.core.alert_judging import judged
from services.core.alert_signals import signals_from_view
from services.core.figures import QueueView
from services.core.merge import QueueMerger, iso
from services.core.partials import Live
from services.core.scope import Scope, queue_total
from services.core.waits import LiveSums

pytestmark = pytest.mark.stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TENANT, PLATFORM = "wallboard", "jd"


# --- the script ----------------------------------------------------------------------------------


def script(busy: str, calm: str, shop: str, base: int) -> list[dict[str, Any]]:
    """Two queues of one shop. `busy`: seven conversations (the figures below are worked out by
    hand); `calm`: three buyers answered within 5, 8 and 12 s, nobody waiting."""
    out: list[dict[str, Any]] = []
    common = {"tenant": TENANT, "shop_id": shop, "platform": PLATFORM}

    def ev(of: str, cid: str, n: int, etype: str, at_s: float, **extra: Any) -> None:
        out.append({
            "event_id": f"{of}-{cid}-{n}", "type": etype, "ts": base + int(at_s * 1000),
            "conversation_id": f"{of}-{cid}", **common, **extra,
        })

    def agent(queue: str, name: str, capacity: int) -> str:
        agent_id = f"{queue}-{name}"
        out.append({**common, "event_id": agent_id, "type": "agent.status", "ts": base, "agent_id": agent_id,
                    "status": "online", "capacity": capacity, "queues": [queue]})
        return agent_id

    q = busy
    a1, a2 = agent(q, "a1", 3), agent(q, "a2", 2)
    agent(q, "a3", 2)  # stays idle
    # c1: FRT 17.5 s, then a second wait of 10 s; resolved at 45 s (a measured handle time: 41 s).
    ev(q, "c1", 1, "conversation.opened", 0, queue=q)
    ev(q, "c1", 2, "message", 1.5, sender="customer")
    ev(q, "c1", 3, "conversation.assigned", 4, agent_id=a1)
    ev(q, "c1", 4, "message", 19, sender="agent", agent_id=a1)
    ev(q, "c1", 5, "message", 30, sender="customer")
    ev(q, "c1", 6, "message", 40, sender="agent", agent_id=a1)
    ev(q, "c1", 7, "conversation.closed", 45, reason="resolved")
    # c2: answered after 45 s.
    ev(q, "c2", 1, "conversation.opened", 10, queue=q)
    ev(q, "c2", 2, "message", 10, sender="customer")
    ev(q, "c2", 3, "message", 55, sender="agent", agent_id=a1)
    # c3: never answered: waits since 20 s (the oldest wait).
    ev(q, "c3", 1, "conversation.opened", 20, queue=q)
    ev(q, "c3", 2, "message", 20, sender="customer")
    ev(q, "c3", 3, "message", 25, sender="customer")
    # c4: abandoned.
    ev(q, "c4", 1, "conversation.opened", 30, queue=q)
    ev(q, "c4", 2, "message", 31, sender="customer")
    ev(q, "c4", 3, "conversation.closed", 100, reason="abandoned")
    # c5: answered after 159 s.
    ev(q, "c5", 1, "conversation.opened", 40, queue=q)
    ev(q, "c5", 2, "message", 41, sender="customer")
    ev(q, "c5", 3, "message", 200, sender="agent", agent_id=a2)
    # c6: a bot first; the wait for a human starts at the handoff (60 s): FRT 10 s.
    ev(q, "c6", 1, "conversation.opened", 50, queue=q)
    ev(q, "c6", 2, "message", 50, sender="customer")
    ev(q, "c6", 3, "message", 52, sender="bot")
    ev(q, "c6", 4, "conversation.handoff", 60)
    ev(q, "c6", 5, "message", 70, sender="agent", agent_id=a2)
    # c7: answered in 3 s, then the buyer writes again at 120 s and waits.
    ev(q, "c7", 1, "conversation.opened", 60, queue=q)
    ev(q, "c7", 2, "message", 61, sender="customer")
    ev(q, "c7", 3, "message", 64, sender="agent", agent_id=a1)
    ev(q, "c7", 4, "message", 120, sender="customer")

    q = calm
    b1 = agent(q, "b1", 3)
    agent(q, "b2", 3)
    for cid, at, frt in (("d1", 100, 5), ("d2", 110, 8), ("d3", 120, 12)):
        ev(q, cid, 1, "conversation.opened", at, queue=q)
        ev(q, cid, 2, "message", at, sender="customer")
        ev(q, cid, 3, "conversation.assigned", at + 1, agent_id=b1)
        ev(q, cid, 4, "message", at + frt, sender="agent", agent_id=b1)
    ev(q, "d1", 5, "conversation.closed", 160, reason="resolved")
    return out


# Busy queue, 5m window (every record of the script lies within the last 5 minutes while the test
# runs): FRT [17.5, 45, 159, 10, 3] → p90 (nearest rank 5 of 5) 159 s; reply times [17.5, 10, 45,
# 159, 10, 3] → p90 159 s; 6 left the unanswered state (5 answered, 1 abandoned): 3 within 30 s,
# 5 within 180 s. Waiting: c3 and c7; unanswered: c3. Agents: a1 2/3 chats (c2, c7; c1 closed),
# a2 2/2 (c5, c6), a3 0/2 → 2 available of 3 online, 7 − 4 = 3 free slots.
BUSY = {
    "awaiting": "2", "unanswered": "1", "frt_p90_s": 159.0, "reply_p90_s": 159.0, "sl_30": "50%", "sl_180": "83%",
    "available": "2", "online": "3", "free": "3",
}
CALM = {"awaiting": "0", "unanswered": "0", "oldest": "—", "sl_30": "100%", "sl_180": "100%", "frt_p90_s": 12.0}


# --- helpers -------------------------------------------------------------------------------------


def seconds_shown(text: str) -> float:
    """A duration as the page shows it ("2分39秒", "45秒", "3.4秒", "1时05分", "2m 39s") in seconds."""
    total, units = 0.0, {"时": 3600, "h": 3600, "分": 60, "m": 60, "秒": 1, "s": 1}
    parts = re.findall(r"([\d.]+)\s*([时分秒hms])", text)
    assert parts, f"not a duration: {text!r}"
    for number, u in parts:
        total += float(number) * units[u]
    return total


def as_of_ms(view: dict[str, Any]) -> float:
    return datetime.fromisoformat(view["as_of"].replace("Z", "+00:00")).timestamp() * 1000


async def wait_for_view(client: httpx.AsyncClient, api: str, queue: str, want: dict[str, Any]) -> dict[str, Any]:
    """The queue's view once the scorer has taken in the whole script (checked on `want`'s live figures)."""
    deadline = time.monotonic() + 90
    view: Any = None
    while time.monotonic() < deadline:
        r = await client.get(f"{api}/v1/queues/{queue}")
        if r.status_code == 200:
            view = r.json()
            if all(view["live"].get(k) == v for k, v in want.items()):
                return view  # type: ignore[no-any-return]
        await asyncio.sleep(0.5)
    raise AssertionError(f"the scorer never produced the scripted view of {queue}: {view}")


class Relay:
    """A TCP relay to the API that the test can cut (closing every open connection and refusing
    new ones) and mend: the browser sees the API go away and come back."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.open = True
        self.conns: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        self.conns.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.conns.difference_update((writer, up_writer))

    def cut(self) -> None:
        self.open = False
        for w in list(self.conns):
            w.close()

    def mend(self) -> None:
        self.open = True

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@contextlib.asynccontextmanager
async def browser_page(width: int = 1920, height: int = 1080) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            await browser.close()


def tile(page: Page, queue: str) -> Locator:
    return page.locator(f'[data-testid="queue-tile"][data-queue="{queue}"]')


async def text_of(page: Page, queue: str, testid: str) -> str:
    return (await tile(page, queue).locator(f'[data-testid="{testid}"]').inner_text()).strip()


async def eventually(check: Any, timeout: float = 10.0) -> None:
    """Retry an async assertion until it holds (the page updates on its own clock)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


# --- 1. the real stack ---------------------------------------------------------------------------


async def test_wallboard_shows_the_floor_and_goes_grey_when_cut_off(stack: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    busy, calm, shop = f"wb-{tag}-presales", f"wb-{tag}-aftersales", f"wb-shop-{tag}"
    base = int(time.time() * 1000) - 200_000  # c3 has waited 180 s when the script is posted
    events = script(busy, calm, shop, base)
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{stack.ingest_url}/v1/events", json=events,
                              headers={"Authorization": f"Bearer {stack.ingest_token}"})
        assert r.status_code == 202, r.text
        await wait_for_view(client, stack.api_url, busy, {"awaiting_reply": 2, "unanswered": 1, "agents_online": 3})
        await wait_for_view(client, stack.api_url, calm, {"awaiting_reply": 0, "agents_online": 2})
        thresholds = await client.get(f"{stack.api_url}/v1/thresholds", params={"queue": busy})
        alerts_endpoint = (await client.get(f"{stack.api_url}/v1/alerts", params={"state": "firing"})).status_code

        relay = Relay(stack.api_url)
        await relay.start()
        try:
            async with browser_page() as page:
                await page.goto(relay.url + "/")
                # Filter to the fresh shop with its drop-down (filled from the views).
                value = "|".join(quote(x, safe="") for x in (TENANT, shop, PLATFORM))
                await page.wait_for_selector(f'#f-shop option[value="{value}"]', state="attached", timeout=15_000)
                await page.select_option("#f-shop", value)
                await page.wait_for_function(
                    "n => document.querySelectorAll('[data-testid=queue-tile]').length === n", arg=2, timeout=15_000)
                assert await page.input_value("#f-platform") == PLATFORM
                assert f"shop_id={shop}" in page.url  # the filter is in the address: a TV bookmark keeps it

                # Hand-computed figures, as the page rounds them.
                async def busy_figures() -> None:
                    assert await text_of(page, busy, "awaiting") == BUSY["awaiting"]
                    assert await text_of(page, busy, "unanswered") == BUSY["unanswered"]
                    assert await text_of(page, busy, "sl-30") == BUSY["sl_30"]
                    assert await text_of(page, busy, "sl-180") == BUSY["sl_180"]
                    assert await text_of(page, busy, "agents-available") == BUSY["available"]
                    assert await text_of(page, busy, "agents-online") == BUSY["online"]
                    assert await text_of(page, busy, "free-slots") == BUSY["free"]
                    for testid, want in (("frt-p90", BUSY["frt_p90_s"]), ("reply-p90", BUSY["reply_p90_s"])):
                        shown = seconds_shown(await text_of(page, busy, testid))
                        assert shown == pytest.approx(want, rel=0.02, abs=1), testid  # ±2% percentile, 1 s shown
                    shown = seconds_shown(await text_of(page, busy, "oldest-wait"))
                    truth = (time.time() * 1000 - (base + 20_000)) / 1000
                    assert truth - 4 <= shown <= truth + 1  # c3 has waited since 20 s; the page ticks each second

                await eventually(busy_figures, 15)
                for testid, want in (("awaiting", CALM["awaiting"]), ("unanswered", CALM["unanswered"]),
                                     ("oldest-wait", CALM["oldest"]), ("sl-30", CALM["sl_30"]),
                                     ("sl-180", CALM["sl_180"])):
                    assert await text_of(page, calm, testid) == want, testid
                frt = await text_of(page, calm, "frt-p90")
                assert frt.endswith("秒") and seconds_shown(frt) == pytest.approx(CALM["frt_p90_s"], rel=0.02, abs=1)

                # Colours from the alert engine's thresholds.
                assert thresholds.status_code == 200
                th = thresholds.json()["queues"][busy]
                oldest_cls = await tile(page, busy).locator('[data-testid="oldest-wait"]').get_attribute("class") or ""
                sl_cls = await tile(page, busy).locator('[data-testid="sl-30"]').get_attribute("class") or ""
                calm_cls = await tile(page, calm).locator('[data-testid="oldest-wait"]').get_attribute("class") or ""
                assert th["oldest_wait"]["critical_s"] <= 180 and "crit" in oldest_cls.split()  # waited ≥ 180 s
                assert th["sla_breach"]["target"] > 0.5 and "warn" in sl_cls.split()  # 50% < target, 6 ≥ min
                assert "s-crit" in (await tile(page, busy).get_attribute("class") or "").split()
                assert not {"ok", "warn", "crit"} & set(calm_cls.split())  # "—" (nobody waits) is not coloured

                # Staffing tile: the API's own answer for this queue and shop.
                sg = th["staffing_gap"]
                params = {"queue": busy, "tenant": TENANT, "shop_id": shop, "platform": PLATFORM, "drain_minutes": 10,
                          "sl_target": sg["sl_target"], "sl_seconds": sg["sl_seconds"],
                          "max_occupancy": sg["max_occupancy"]}
                staffing = (await client.get(f"{stack.api_url}/v1/staffing", params=params)).json()

                async def staffing_shown() -> None:
                    assert await text_of(page, busy, "required-agents") == str(staffing["required_agents"])
                    assert await text_of(page, busy, "drain-agents") == str(staffing["backlog_drain"]["agents"])
                    available = str(staffing["inputs"]["agents_available"])
                    assert await text_of(page, busy, "staffing-available") == available

                await eventually(staffing_shown, 15)

                # The data's age, from as_of on the server's clock.
                age = await page.inner_text('[data-testid="data-age"]')
                m = re.fullmatch(r"数据 (\d+) 秒前", age.strip())
                assert m and int(m.group(1)) <= 5, age
                assert await page.inner_text("#conn-text") == "实时"
                assert not await page.is_visible('[data-testid="stale-banner"]')

                # The alert banner: the firing oldest_wait alert of this queue.
                assert alerts_endpoint == 200
                banner = page.locator('[data-testid="alert-banner"]')
                alert = banner.locator(f'[data-testid="alert"][data-rule="oldest_wait"][data-queue="{busy}"]')
                await alert.wait_for(state="visible", timeout=20_000)
                assert await alert.get_attribute("data-severity") == "critical"
                assert "alerting" in (await tile(page, busy).get_attribute("class") or "").split()

                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "wallboard.png"))

                # English, remembered across a reload; then back to Chinese.
                await page.click('[data-testid="lang-switch"]')
                labels = await tile(page, busy).locator(".lbl").all_inner_texts()
                assert {"Waiting", "Unanswered", "Oldest wait", "First reply P90"} <= {x.strip() for x in labels}
                assert re.fullmatch(r"data \d+ s ago", (await page.inner_text('[data-testid="data-age"]')).strip())
                assert await page.inner_text("#conn-text") == "LIVE"
                assert seconds_shown(await text_of(page, busy, "frt-p90")) == pytest.approx(159, rel=0.02, abs=1)
                await page.reload()
                await tile(page, busy).wait_for(timeout=15_000)
                assert await page.inner_text('[data-testid="lang-switch"]') == "中文"
                assert await page.evaluate("document.documentElement.lang") == "en"
                await page.click('[data-testid="lang-switch"]')
                assert (await text_of(page, busy, "awaiting")) == BUSY["awaiting"]
                assert "等待中" in await tile(page, busy).inner_text()

                # Cut the API off: the board greys and says so; mend it: it reconnects by itself.
                relay.cut()
                stale = page.locator('[data-testid="stale-banner"]')
                await stale.wait_for(state="visible", timeout=10_000)
                assert "数据中断" in await stale.inner_text()
                assert "stale" in (await page.get_attribute("body", "class") or "").split()
                assert await page.evaluate("getComputedStyle(document.getElementById('board')).filter") != "none"
                assert (await page.inner_text("#conn-text")).strip() == "连接中断"
                # The age keeps counting (waited on, not slept: how far it has got depends on the machine) and the
                # figures stay, greyed.
                age_s = "Number(document.querySelector('[data-testid=data-age]').dataset.ageS)"
                cut_at = await page.evaluate(age_s)
                await page.wait_for_function(f"n => {age_s} >= n + 2", arg=cut_at, timeout=15_000)
                assert re.fullmatch(r"数据 \d+ 秒前", (await page.inner_text('[data-testid="data-age"]')).strip())
                assert await text_of(page, busy, "awaiting") == BUSY["awaiting"]
                assert "stale" in (await page.get_attribute("body", "class") or "").split()
                relay.mend()
                await stale.wait_for(state="hidden", timeout=30_000)
                assert await page.inner_text("#conn-text") == "实时"
        finally:
            await relay.stop()


# --- 2. the page against the API app over a hand-filled store ----------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(
    store: ViewStore, routes: Any = None, alert_store: AlertStore | None = None
) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(ApiSettings(), store=store, alert_store=alert_store)
    if routes is not None:
        routes(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def hand_view(queue: str, now_ms: int, age_s: float) -> QueueView:
    """A view with a buyer waiting 42 s and no agent, reply or window figures at all (nulls)."""
    merger = QueueMerger(5000)
    live = Live(open=1, unanswered=1, unassigned=1, awaiting_reply=1)
    live.waiting[now_ms - 42_000] = 1
    merger.put_live("c", 0, Scope("t", "s", "web", queue), LiveSums.of(live))
    view = merger.views(now_ms)[queue_total(queue)]
    view["as_of"] = iso(now_ms - int(age_s * 1000))
    return published(view)


def published(view: QueueView) -> QueueView:
    """A view as the scorer publishes it: with the alert rules' reading of it (`judged`)."""
    th = thresholds_for(view["queue"])
    return {**view, "judged": judged(signals_from_view(view, th), th)}


async def test_wallboard_nulls_old_data_and_stream_alerts() -> None:
    now = int(time.time() * 1000)
    store = ViewStore("unused:9092", "unused")
    store.views[queue_total("presales")] = hand_view("presales", now, age_s=0)
    store.caught_up.set()
    # Alerts as the API mirrors them from the alerts topic: a change goes to GET /v1/alerts and, once
    # the mirror has caught up, to every stream (AlertStore.on_change → publish_alerts).
    alert_store = AlertStore("unused:9092", "unused")
    alert_store.caught_up.set()

    alert = {
        "id": "oldest_wait:presales:*:*:*:1", "rule": "oldest_wait", "queue": "presales", "tenant": "*",
        "shop_id": "*", "platform": "*", "severity": "warning", "state": "firing", "started_at": iso(now - 65_000),
        "resolved_at": None, "updated_at": iso(now), "value": 120.0, "threshold": 100.0,
        "summary_zh": "售前队列最久等待 120 秒，达到 100 秒", "summary_en": "presales: oldest buyer has waited 120 s",
        "time_to_breach_s": 60.0, "current_value": 120.0,
    }
    async with serve(store, None, alert_store) as (url, _app), browser_page(1366, 768) as page:
        await page.goto(url + "/")
        await tile(page, "presales").wait_for(timeout=10_000)
        # No data is "—", never 0; counts that are known are shown, even when 0 would be a real figure.
        assert await text_of(page, "presales", "awaiting") == "1"
        for testid in ("frt-p90", "reply-p90", "sl-30", "sl-180", "agents-available", "agents-online", "free-slots"):
            assert await text_of(page, "presales", testid) == "—", testid
        assert seconds_shown(await text_of(page, "presales", "oldest-wait")) == pytest.approx(42, abs=2)
        assert await page.inner_text("#conn-text") == "实时"

        # An alert comes through the stream at once: counted by severity, shown with its value now (the
        # buyer of the view has waited 42 s; it fired at 120 s) and how long it has been open.
        alert_store.apply(str(alert["id"]).encode(), orjson.dumps(alert))
        banner = page.locator('[data-testid="alert-banner"]')
        card = banner.locator('[data-testid="alert"][data-rule="oldest_wait"][data-queue="presales"]')
        await card.wait_for(state="visible", timeout=5_000)
        assert await banner.locator('[data-testid="alerts-warning"] b').inner_text() == "1"
        assert await banner.locator('[data-testid="alerts-critical"] b').inner_text() == "0"
        text = await card.inner_text()
        assert "售前" in text and "最久等待" in text and "触发时 2:00" in text
        assert clock_seconds(await card.locator('[data-testid="alert-now"]').inner_text()) == pytest.approx(42, abs=2)
        assert await card.locator('[data-testid="alert-open"]').inner_text() == "已 1分"
        assert "售前队列最久等待 120 秒" in (await card.get_attribute("title") or "")  # the engine's sentence
        # English, then back.
        await page.click('[data-testid="lang-switch"]')
        await card.locator("text=Oldest wait").wait_for(timeout=5_000)
        assert (await card.locator('[data-testid="alert-now"]').inner_text()).startswith("now ")
        await page.click('[data-testid="lang-switch"]')
        # Resolved: it goes.
        alert_store.apply(str(alert["id"]).encode(), orjson.dumps({**alert, "state": "resolved"}))
        await banner.wait_for(state="hidden", timeout=5_000)

        # The stream is up but the data stopped: as_of older than stale_after_s greys the board.
        old = hand_view("presales", now, age_s=0)
        old["as_of"] = iso(int(time.time() * 1000) - 30_000)
        store.views[queue_total("presales")] = old
        async with store.changed:
            store.version += 1
            store.changed.notify_all()
        stale = page.locator('[data-testid="stale-banner"]')
        await stale.wait_for(state="visible", timeout=5_000)
        assert "数据中断" in await stale.inner_text() and "10 秒" in await stale.inner_text()
        m = re.fullmatch(r"数据 (\d+) 秒前", (await page.inner_text('[data-testid="data-age"]')).strip())
        assert m and 29 <= int(m.group(1)) <= 33
        # Fresh data again: live again.
        fresh = orjson.loads(orjson.dumps(old))
        fresh["as_of"] = iso(int(time.time() * 1000))
        store.views[queue_total("presales")] = fresh
        async with store.changed:
            store.version += 1
            store.changed.notify_all()
        await stale.wait_for(state="hidden", timeout=5_000)


# --- 3. a big floor at peak, on a 1080p and a 4K screen -------------------------------------------

PLATFORMS = ("jd", "taobao", "pdd", "douyin", "web")
KINDS = ("presales", "aftersales", "refunds", "logistics", "vip", "invoice", "warranty", "install")
HOT = 30  # queues with a buyer waiting past the critical level: one oldest_wait alert each


def big_floor(tag: str, now_ms: int) -> tuple[list[dict[str, Any]], dict[str, float], list[str], list[str]]:
    """40 active queues (5 platforms × 8 kinds, one shop per platform) and 3 quiet ones.

    The first HOT queues each have a buyer waiting, unanswered, since `wait` seconds before now: every
    wait is past the critical level (180 s), so each fires one critical oldest_wait alert at once and
    none changes severity while the test looks (the order of the board holds still). The first waits
    longest by far (the most urgent queue). The other 10 had a buyer answered in 5 s, nobody waiting.
    Every active queue has two agents online (3 chats each). The 3 quiet queues only have an agent
    online: nothing happened in them for the last hour.
    """
    tenant = f"bigfloor-{tag}"
    queues = [f"{p}-{k}-{tag}" for p in PLATFORMS for k in KINDS]
    quiet = [f"{p}-quiet-{tag}" for p in PLATFORMS[:3]]
    waits = {q: (1500.0 if i == 0 else 1000.0 - 25 * i) for i, q in enumerate(queues[:HOT])}
    out: list[dict[str, Any]] = []
    for q in queues + quiet:
        platform = q.split("-", 1)[0]
        common = {"tenant": tenant, "shop_id": f"{platform}-shop-{tag}", "platform": platform}
        agents = ("a1", "a2") if q in queues else ("a1",)
        for name in agents:
            out.append({**common, "event_id": f"{q}-{name}", "type": "agent.status", "ts": now_ms - 1_600_000,
                        "agent_id": f"{q}-{name}", "status": "online", "capacity": 3, "queues": [q]})
        if q in quiet:
            continue
        at = now_ms - int(waits.get(q, 120.0) * 1000)
        cid = f"{q}-c1"
        out.append({**common, "event_id": f"{cid}-1", "type": "conversation.opened", "ts": at,
                    "conversation_id": cid, "queue": q})
        out.append({**common, "event_id": f"{cid}-2", "type": "message", "ts": at, "conversation_id": cid,
                    "sender": "customer"})
        if q not in waits:
            out.append({**common, "event_id": f"{cid}-3", "type": "message", "ts": at + 5000, "conversation_id": cid,
                        "sender": "agent", "agent_id": f"{q}-a1"})
    return out, waits, queues, quiet


def clock_seconds(text: str) -> float:
    """The board's clock figures ("12:34", "1:02:03", "现 12:34") in seconds."""
    m = re.search(r"(\d+(?::\d{2}){1,2})", text)
    assert m, f"not a clock: {text!r}"
    total = 0.0
    for part in m.group(1).split(":"):
        total = total * 60 + int(part)
    return total


NO_SCROLL = """() => {
  const se = document.scrollingElement;
  const off = [...document.querySelectorAll('[data-testid=queue-row], [data-testid=alert-row], [data-testid=alert]')]
    .map((e) => e.getBoundingClientRect())
    .filter((r) => r.bottom > innerHeight + 0.5 || r.right > innerWidth + 0.5 || r.top < 0 || r.left < 0).length;
  return {h: se.scrollHeight, w: se.scrollWidth, vh: innerHeight, vw: innerWidth, off};
}"""

# The smallest computed font size of row figures, queue names and alert text, in units of U (1% of
# the screen height of a 16:9 area): docs/wallboard.md's minimum type sizes.
MIN_TYPE = """() => {
  const u = Math.min(innerHeight, innerWidth * 0.5625) / 100;
  const size = (sel) => Math.min(
    ...[...document.querySelectorAll(sel)].map((e) => parseFloat(getComputedStyle(e).fontSize) / u));
  return {
    figures: size('[data-testid=queue-row] .c:not(.c-label):not(.c-flag), [data-testid=alert-row] .now'),
    names: size('[data-testid=queue-row] .c-label, [data-testid=alert] .al1, [data-testid=alert] .anow'),
  };
}"""


async def shows_current(card: Locator, alert: dict[str, Any]) -> None:
    """An alert card shows the alert's value now (at least the API's `current_value`) and, apart,
    its value at firing."""
    shown = clock_seconds(await card.locator('[data-testid="alert-now"]').inner_text())
    assert shown >= alert["current_value"] - 1
    assert clock_seconds(await card.locator(".fired").inner_text()) == int(alert["value"])


async def board_state(page: Page) -> dict[str, Any]:
    out: dict[str, Any] = await page.evaluate("""() => {
      const b = document.getElementById('board');
      return {
        page: Number(b.dataset.page), pages: Number(b.dataset.pages), kind: b.dataset.kind, mode: b.dataset.mode,
        queues: [...document.querySelectorAll('[data-testid=queue-row]')].map((r) => r.dataset.queue),
        alerts: [...document.querySelectorAll('[data-testid=alert-row]')]
          .map((r) => r.dataset.queue + '|' + r.dataset.rule),
      };
    }""")
    return out


async def test_a_big_floor_fits_one_screen_at_1080p_and_4k(stack: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    now_ms = int(time.time() * 1000)
    events, waits, queues, quiet = big_floor(tag, now_ms)
    most_urgent = queues[0]
    async with httpx.AsyncClient(timeout=30) as client:
        headers = {"Authorization": f"Bearer {stack.ingest_token}"}
        for i in range(0, len(events), 100):
            r = await client.post(f"{stack.ingest_url}/v1/events", json=events[i:i + 100], headers=headers)
            assert r.status_code == 202, r.text

        # The scorer has taken it all in: every queue's view, and the HOT queues' alerts firing.
        async def floor_seen() -> list[dict[str, Any]]:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                views = (await client.get(f"{stack.api_url}/v1/queues")).json()["queues"]
                mine = {v["queue"]: v for v in views if v["queue"].endswith(tag)}
                firing = (await client.get(f"{stack.api_url}/v1/alerts", params={"state": "firing"})).json()["alerts"]
                # One condition, one page (METRICS.md): a queue in one shop pages at the shop's scope, a queue
                # across shops at the queue's; one alert per queue either way.
                rollup = [a for a in firing if a["queue"].endswith(tag)]
                waiting = all(mine.get(q, {}).get("live", {}).get("awaiting_reply") == (1 if q in waits else 0)
                              for q in queues)
                if waiting and set(mine) == set(queues + quiet) and len({a["queue"] for a in rollup}) >= HOT:
                    return rollup
                await asyncio.sleep(0.5)
            raise AssertionError(f"the scorer never showed the big floor: {len(mine)} views, {len(rollup)} alerts")

        rollup = await floor_seen()
        assert {a["queue"] for a in rollup if a["rule"] == "oldest_wait"} == set(waits)
        assert all(a["severity"] == "critical" for a in rollup if a["rule"] == "oldest_wait")

        for width, height in ((1920, 1080), (3840, 2160)):
            async with browser_page(width, height) as page:
                # A saved board: this team's group, pages turning every 3 s.
                await page.goto(f"{stack.api_url}/?group={tag}&rotate=3")
                await page.wait_for_function(
                    "n => document.querySelectorAll('[data-testid=queue-row]').length > 0 && "
                    "document.querySelectorAll('[data-testid=alert]').length === 3 && "
                    "Number(document.getElementById('board').dataset.pages) >= n", arg=3, timeout=30_000)
                assert await page.inner_text('[data-testid="board-name"]') == tag
                state = await board_state(page)
                assert state["mode"] == "rows"

                # The pages turn by themselves, on a visible timer.
                first = state["page"]
                await page.wait_for_function(
                    "p => Number(document.getElementById('board').dataset.page) !== p", arg=first, timeout=12_000)
                assert await page.is_visible('[data-testid="pager"]')
                # Space holds the page; Home goes to the first; the arrow keys turn pages.
                await page.keyboard.press("Space")
                await page.wait_for_selector('[data-testid="pager"].paused')
                await page.keyboard.press("Home")
                await page.wait_for_function("() => document.getElementById('board').dataset.page === '1'")

                # The summary: counts by severity as the API has them, the three most urgent with their
                # current value (the buyer's wait now, not the wait at firing) and how long they are open.
                firing = (await client.get(f"{stack.api_url}/v1/alerts", params={"state": "firing"})).json()["alerts"]
                # One condition, one page (METRICS.md): a queue in one shop pages at the shop's scope, a queue
                # across shops at the queue's; one alert per queue either way.
                rollup = [a for a in firing if a["queue"].endswith(tag)]
                crit = sum(a["severity"] == "critical" for a in rollup)
                assert await page.inner_text('[data-testid="alerts-critical"] b') == str(crit)
                assert await page.inner_text('[data-testid="alerts-warning"] b') == str(len(rollup) - crit)
                assert await page.inner_text('[data-testid="alerts-more"] b') == f"+{len(rollup) - 3} 条"
                cards = page.locator('[data-testid="alert-banner"] [data-testid="alert"]')
                top = await cards.first.get_attribute("data-queue")
                assert top == most_urgent  # critical, and furthest past its threshold
                by_queue = {a["queue"]: a for a in rollup if a["rule"] == "oldest_wait"}
                for i in range(3):
                    card = cards.nth(i)
                    alert = by_queue[await card.get_attribute("data-queue") or ""]
                    shown = clock_seconds(await card.locator('[data-testid="alert-now"]').inner_text())
                    truth = time.time() - (now_ms / 1000 - waits[alert["queue"]])
                    assert truth - 5 <= shown <= truth + 1, (alert["queue"], shown, truth)
                    assert (await card.locator('[data-testid="alert-open"]').inner_text()).startswith("已 ")

                # Once the buyer has waited on since the alert fired, the API and the board say so: the
                # value now moves on, the value at firing stays.
                top_id = by_queue[most_urgent]["id"]
                deadline = time.monotonic() + 60
                while (got := (await client.get(f"{stack.api_url}/v1/alerts/{top_id}")).json())[
                        "current_value"] < got["value"] + 5 and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                assert got["current_value"] >= got["value"] + 5, got
                await eventually(functools.partial(shows_current, cards.first, got), 10)

                # Stable: while the figures move on (every wait ticks up), no row changes place.
                order = (await board_state(page))["queues"]
                shown_at = clock_seconds(await cards.first.locator('[data-testid="alert-now"]').inner_text())
                await page.wait_for_function(
                    """s => { const e = document.querySelector('[data-testid=alert] [data-testid=alert-now]');
                              const m = e && e.textContent.match(/(\\d+):(\\d{2})/);
                              return m && Number(m[1]) * 60 + Number(m[2]) >= s + 3; }""", arg=shown_at, timeout=15_000)
                assert (await board_state(page))["queues"] == order

                # Every page: a screenshot, nothing scrolls or sticks out, type no smaller than the minimum.
                seen_queues: list[str] = []
                seen_alerts: set[str] = set()
                first_page: list[str] = []
                for n in range(1, state["pages"] + 1):
                    await page.wait_for_function(
                        "n => document.getElementById('board').dataset.page === String(n)", arg=n)
                    st = await board_state(page)
                    geometry = await page.evaluate(NO_SCROLL)
                    assert geometry["h"] <= geometry["vh"] and geometry["w"] <= geometry["vw"], (n, geometry)
                    assert geometry["off"] == 0, (n, geometry)
                    sizes = await page.evaluate(MIN_TYPE)
                    assert sizes["figures"] >= 4.5 - 0.05 and sizes["names"] >= 3.9 - 0.05, (n, sizes)
                    ARTIFACTS.mkdir(exist_ok=True)
                    await page.screenshot(path=str(ARTIFACTS / f"wallboard-{width}x{height}-page{n}.png"))
                    if n == 1:
                        first_page = st["queues"]
                    seen_queues += st["queues"]
                    seen_alerts |= set(st["alerts"])
                    await page.keyboard.press("ArrowRight")

                assert sorted(seen_queues) == sorted(queues)  # every active queue once, on some page
                assert first_page[0] == most_urgent and first_page == seen_queues[:len(first_page)]
                assert seen_alerts == {f"{a['queue']}|{a['rule']}" for a in rollup}
                quiet_line = page.locator('[data-testid="quiet-line"]')
                assert sorted((await quiet_line.get_attribute("data-queues") or "").split(",")) == sorted(quiet)
                assert "静默 3 个队列" in await quiet_line.inner_text()

                # The full alert list is one key (A, and A again to go back) or one click away.
                await page.keyboard.press("a")
                await page.wait_for_function("() => document.getElementById('board').dataset.kind === 'alerts'")
                await page.keyboard.press("a")
                await page.wait_for_function("() => document.getElementById('board').dataset.page === '1'")
                await page.click('[data-testid="alerts-more"]')
                await page.wait_for_function("() => document.getElementById('board').dataset.kind === 'alerts'")


# --- 4. order and saved boards, on the API app over a hand-filled store ---------------------------


def floor_store(waits: dict[str, float]) -> ViewStore:
    """A queue total per name, each with one buyer waiting `waits[name]` seconds, data fresh now."""
    store = ViewStore("unused:9092", "unused")
    set_waits(store, waits)
    store.caught_up.set()
    return store


def set_waits(store: ViewStore, waits: dict[str, float]) -> None:
    now = int(time.time() * 1000)
    for queue, wait in waits.items():
        view = hand_view(queue, now, age_s=0)
        view["live"].update({"oldest_wait_s": wait, "wait_p50_s": wait, "wait_p90_s": wait})
        store.views[queue_total(queue)] = published(view)


async def notify(store: ViewStore) -> None:
    async with store.changed:
        store.version += 1
        store.changed.notify_all()


async def test_rows_follow_urgency_without_jumping_and_saved_boards_pick_queues() -> None:
    names = [f"{p}-{k}" for p in ("jd", "taobao", "pdd", "douyin", "web") for k in KINDS[:6]]  # 30 queues
    # Below the warning level (100 s) every queue is green: ordered by the oldest wait alone.
    waits = {q: 90.0 - 2.5 * i for i, q in enumerate(names)}
    store = floor_store(waits)
    async with serve(store) as (url, _app), browser_page(1366, 768) as page:
        await page.goto(url + "/?rotate=0")
        await page.wait_for_function("() => document.querySelectorAll('[data-testid=queue-row]').length > 0")
        state = await board_state(page)
        assert state["mode"] == "rows" and state["pages"] >= 2  # a laptop screen: fewer rows a page
        geometry = await page.evaluate(NO_SCROLL)
        assert geometry["h"] <= geometry["vh"] and geometry["w"] <= geometry["vw"] and geometry["off"] == 0
        assert state["queues"] == names[:len(state["queues"])]  # longest wait first

        # Waits a few seconds apart swap (the 2nd and 3rd cross by 2 s) and everyone waits 5 s longer:
        # nothing moves.
        waits = {q: w + 5 for q, w in waits.items()}
        waits[names[1]], waits[names[2]] = waits[names[2]], waits[names[1]] + 2
        set_waits(store, waits)
        await notify(store)
        row = page.locator(f'[data-testid="queue-row"][data-queue="{names[0]}"] [data-testid="oldest-wait"]')
        await eventually(lambda: _equals(row.inner_text(), "1:35"), 5)
        assert (await board_state(page))["queues"] == state["queues"]

        # The last queue's buyer now waits past the critical level: it goes to the top of the first page.
        last = names[-1]
        waits[last] = 200.0
        set_waits(store, waits)
        await notify(store)
        await page.wait_for_function(
            "q => document.querySelector('[data-testid=queue-row]').dataset.queue === q", arg=last, timeout=5_000)
        top = page.locator(f'[data-testid="queue-row"][data-queue="{last}"]')
        assert "s-crit" in (await top.get_attribute("class") or "").split()

    # Saved boards: a list of queues (with a wildcard), or a group (a word of the queues' names).
    async with serve(store) as (url, _app), browser_page(1920, 1080) as page:
        await page.goto(url + "/?queues=jd-presales,taobao-*&rotate=0")
        await page.wait_for_function("() => document.querySelectorAll('[data-testid=queue-row]').length > 0")
        shown = sorted((await board_state(page))["queues"])
        assert shown == sorted(["jd-presales"] + [q for q in names if q.startswith("taobao-")])
        assert await page.inner_text('[data-testid="board-name"]') == "jd-presales,taobao-*"
        await page.goto(url + "/?group=aftersales&rotate=0")
        await page.wait_for_function("() => document.querySelectorAll('[data-testid=queue-row]').length === 5")
        assert sorted((await board_state(page))["queues"]) == sorted(q for q in names if q.endswith("-aftersales"))


async def _equals(got: Any, want: str) -> None:
    assert (await got).strip() == want


async def test_names_and_alert_texts_are_shown_as_text_never_as_html() -> None:
    evil = '<img src=x onerror="window.__xss=1">'
    names = [f"{evil}-{k}" for k in KINDS[:5]] + ["vip"]  # rows (more than tiles), no word all share
    store = floor_store({q: 150.0 for q in names})
    alert_store = AlertStore("unused:9092", "unused")
    alert_store.caught_up.set()
    now = int(time.time() * 1000)
    for i, q in enumerate(names):
        alert = {
            "id": f"oldest_wait:{q}:*:*:*:{i}", "rule": "oldest_wait", "queue": q, "tenant": "*", "shop_id": "*",
            "platform": "*", "severity": "warning", "state": "firing", "started_at": iso(now - 5000),
            "resolved_at": None, "updated_at": iso(now), "value": 120.0, "threshold": 100.0,
            "summary_zh": evil, "summary_en": evil, "time_to_breach_s": None,
        }
        alert_store.apply(str(alert["id"]).encode(), orjson.dumps(alert))
    async with serve(store, None, alert_store) as (url, _app), browser_page(1920, 1080) as page:
        await page.goto(url + "/?rotate=0")
        await page.wait_for_function("() => document.querySelectorAll('[data-testid=alert]').length === 3")
        await page.keyboard.press("a")
        await page.wait_for_function("() => document.querySelectorAll('[data-testid=alert-row]').length === 6")
        assert await page.evaluate("window.__xss") is None
        assert await page.locator("img").count() == 0
        row = page.locator('[data-testid="alert-row"]').first
        assert (await row.inner_text()).startswith("警告\n<img src=x onerror=")
        card = page.locator('[data-testid="alert"]').first
        assert await card.get_attribute("title") == evil  # the engine's sentence, as text
