"""GET /v1/stream (SSE), /v1/thresholds and the wallboard page, over a view store filled by hand.

The stream never ends by itself, so these tests drive the ASGI app directly (httpx's ASGI
transport waits for the whole body): a scripted `receive` that reports the client's disconnect
when told, and a `send` that collects the body as it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from services.api.app import create_app
from services.api.delta import NO_CHANGE, apply_patch, patch, views_delta
from services.api.settings import ApiSettings
from services.api.stream import StreamHub
from services.api.views import ViewStore
from services.api.wallboard import STATIC
from services.core.alert_config import thresholds_for
from services.core.alert_judging import judged
from services.core.alert_signals import signals_from_view
from services.core.merge import QueueMerger
from services.core.partials import Live
from services.core.scope import Scope, queue_total
from services.core.waits import LiveSums

KEYS = [
    queue_total("presales"),
    Scope("acme", "acme-jd", "jd", "presales"),
    Scope("*", "*", "jd", "presales"),
    queue_total("aftersales"),
    Scope("acme", "acme-pdd", "pdd", "aftersales"),
    Scope("*", "*", "pdd", "aftersales"),
]


def filled_store() -> ViewStore:
    """Presales in shop acme-jd, aftersales in shop acme-pdd: a buyer waiting in each."""
    merger = QueueMerger(5000)
    for shop, platform, queue in (("acme-jd", "jd", "presales"), ("acme-pdd", "pdd", "aftersales")):
        live = Live(open=3, unanswered=1, unassigned=1, awaiting_reply=1)
        live.waiting[1_000] = 1
        merger.put_live("c", 0, Scope("acme", shop, platform, queue), LiveSums.of(live))
    views = merger.views(61_000)
    store = ViewStore("unused:9092", "unused")
    for key in KEYS:
        # As the scorer publishes a view: with the alert rules' reading of it.
        th = thresholds_for(key.queue)
        store.views[key] = {**views[key], "judged": judged(signals_from_view(views[key], th), th)}
    store.caught_up.set()
    return store


async def bump(store: ViewStore, **live: Any) -> None:
    """What the Kafka reader does on a batch: new view dicts, then notify."""
    for key, view in list(store.views.items()):
        new = orjson.loads(orjson.dumps(view))
        new["live"].update(live)
        store.views[key] = new
    async with store.changed:
        store.version += 1
        store.changed.notify_all()


class SSEClient:
    """One GET /v1/stream against the ASGI app, read event by event."""

    def __init__(self, app: FastAPI, query: str = "") -> None:
        self.app, self.query = app, query
        self.chunks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.buffer = b""
        self.requested = False
        self.task: asyncio.Task[None] | None = None
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.ended = False

    async def _receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        await self.chunks.put(dict(message))

    async def __aenter__(self) -> SSEClient:
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/v1/stream", "raw_path": b"/v1/stream",
            "query_string": self.query.encode(), "root_path": "", "headers": [(b"host", b"api")],
            "client": ("127.0.0.1", 50000), "server": ("api", 80),
        }
        self.task = asyncio.create_task(self.app(scope, self._receive, self._send))
        start = await asyncio.wait_for(self.chunks.get(), 5)
        assert start["type"] == "http.response.start"
        self.status = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def disconnect(self) -> None:
        self.gone.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    async def next(self, timeout: float = 5.0) -> tuple[str, Any]:
        """The next SSE message: (event name, parsed data) or ("comment", text)."""
        while b"\n\n" not in self.buffer:
            message = await asyncio.wait_for(self.chunks.get(), timeout)
            assert message["type"] == "http.response.body"
            self.buffer += message.get("body", b"")
            if not message.get("more_body", False):
                self.ended = True
                if b"\n\n" not in self.buffer:
                    raise EOFError("stream ended")
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        event, data = "message", None
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                return "comment", line[1:].strip()
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data = orjson.loads(value)
        return event, data

    async def next_event(self, name: str, timeout: float = 5.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event, data = await self.next(max(0.01, deadline - loop.time()))
            if event == name:
                return data


@pytest.fixture
def store() -> ViewStore:
    return filled_store()


@pytest.fixture
def app(store: ViewStore) -> FastAPI:
    return create_app(ApiSettings(), store=store)


def hub_of(app: FastAPI) -> StreamHub:
    hub = app.state.stream
    assert isinstance(hub, StreamHub)
    return hub


async def test_connect_sends_the_current_views_with_the_queues_filters(app: FastAPI, store: ViewStore) -> None:
    async with SSEClient(app, "platform=jd") as sse:
        assert sse.status == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert sse.headers["cache-control"] == "no-cache"
        event, data = await sse.next()
        assert event == "views"
        assert data["queues"] == store.select(None, None, None, "jd")  # same as GET /v1/queues?platform=jd
        assert [v["scope"]["platform"] for v in data["queues"]] == ["jd"]
        assert data["as_of"] == data["queues"][0]["as_of"]
        assert data["server_time"].endswith("Z") and data["stale_after_s"] == 10.0
        # What the alert rules read in each view, as the scorer published it with the view: the page colours by
        # the figures and levels the alerts fire on, and the API judges nothing itself.
        presales = data["queues"][0]
        assert data["signals"] == {"presales": presales["judged"]["signals"]}
        assert presales["judged"]["levels"]["oldest_wait"] == "ok"  # 60 s: under the warning level
        assert data["signals"]["presales"]["oldest_wait_s"] == 60.0 and data["signals"]["presales"]["waiting"] == 1
        assert data["options"] == {
            "queues": ["aftersales", "presales"],
            "platforms": ["jd", "pdd"],
            "shops": [
                {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"},
                {"tenant": "acme", "shop_id": "acme-pdd", "platform": "pdd"},
            ],
        }
    async with SSEClient(app, "shop_id=acme-pdd") as sse:
        data = await sse.next_event("views")
        assert [(v["queue"], v["scope"]["shop_id"]) for v in data["queues"]] == [("aftersales", "acme-pdd")]


async def test_changes_are_sent_coalesced_at_most_one_per_interval(app: FastAPI, store: ViewStore) -> None:
    loop = asyncio.get_running_loop()
    every = hub_of(app).min_interval_s  # STREAM_MIN_INTERVAL_S, 0.25 s
    async with SSEClient(app) as sse:
        await sse.next_event("views")
        received: list[tuple[float, int]] = []

        async def read() -> None:
            while True:
                data = await sse.next_event("views", timeout=10)
                received.append((loop.time(), data["queues"][0]["live"]["awaiting_reply"]))

        reader = asyncio.create_task(read())
        started = loop.time()
        for n in range(1, 41):  # a change every 50 ms for 2 s
            await bump(store, awaiting_reply=n)
            await asyncio.sleep(0.05)
        stopped = loop.time()
        await asyncio.sleep(0.8)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    times = [t for t, _ in received]
    gaps = [b - a for a, b in zip([started, *times], times, strict=False)]
    assert 2 / every * 0.6 <= len(received) <= 2 / every + 2, received  # 40 changes in 2 s: ~2/every events
    assert min(gaps[1:]) >= every - 0.05, gaps  # at most one per interval
    assert max(gaps) <= 2 * every + 0.5, gaps  # and one soon after each while anything changes
    assert received[-1][1] == 40 and received[-1][0] - stopped <= every + 0.1  # the last state arrives promptly


async def test_no_change_no_views_but_a_heartbeat_comment(app: FastAPI, store: ViewStore) -> None:
    hub_of(app).heartbeat_s = 0.3
    async with SSEClient(app) as sse:
        assert (await sse.next())[0] == "views"
        async with store.changed:  # a notification that changed nothing in this scope
            store.version += 1
            store.changed.notify_all()
        assert await sse.next(2) == ("comment", "heartbeat")
        assert await sse.next(2) == ("comment", "heartbeat")  # nothing else: no views, no alerts


async def test_default_heartbeat_is_15_seconds(app: FastAPI) -> None:
    hub = hub_of(app)
    assert hub.heartbeat_s == 15.0 and hub.min_interval_s == 0.25


async def test_alerts_hook_sends_alert_changes_coalesced_by_id(app: FastAPI) -> None:
    hub = hub_of(app)
    hub.publish_alerts([{"id": "before", "state": "firing"}])  # nobody listening: dropped, no error
    async with SSEClient(app) as sse:
        assert (await sse.next())[0] == "views"
        hub.publish_alerts([{"id": "a1", "rule": "oldest_wait", "severity": "warning", "state": "firing"}])
        hub.publish_alerts([
            {"id": "a1", "rule": "oldest_wait", "severity": "critical", "state": "firing"},
            {"id": "a2", "rule": "sla_breach", "severity": "warning", "state": "resolved"},
        ])
        data = await sse.next_event("alerts")
        assert {a["id"]: (a["severity"], a["state"]) for a in data["alerts"]} == {
            "a1": ("critical", "firing"), "a2": ("warning", "resolved"),
        }

        class AlertLike:  # services.core.alerts.Alert publishes itself through to_json()
            def to_json(self) -> dict[str, Any]:
                return {"id": "a3", "state": "firing"}

        hub.publish_alerts([AlertLike()])
        assert (await sse.next_event("alerts"))["alerts"] == [{"id": "a3", "state": "firing"}]


async def test_disconnects_leak_no_tasks(app: FastAPI, store: ViewStore) -> None:
    hub = hub_of(app)
    await asyncio.sleep(0)
    before = asyncio.all_tasks()
    clients = [SSEClient(app) for _ in range(3)]
    for c in clients:
        await c.__aenter__()
        await c.next_event("views")
    assert hub.subscribers == 3
    assert [t.get_name() for t in asyncio.all_tasks() - before].count("stream-watcher") == 1
    await bump(store, awaiting_reply=7)
    for c in clients:
        await c.next_event("views")
    for c in clients:
        await c.disconnect()
    assert hub.subscribers == 0
    for _ in range(10):
        if not asyncio.all_tasks() - before:
            break
        await asyncio.sleep(0.01)
    assert asyncio.all_tasks() - before == set()
    async with SSEClient(app) as sse:  # the next client starts a new watcher and is served as usual
        await sse.next_event("views")
        await bump(store, awaiting_reply=8)
        assert (await sse.next_event("views"))["queues"][0]["live"]["awaiting_reply"] == 8


async def test_stream_ends_when_the_server_exits(app: FastAPI) -> None:
    exiting = False
    hub = hub_of(app)
    hub.exiting = lambda: exiting
    async with SSEClient(app) as sse:
        await sse.next_event("views")
        exiting = True
        with pytest.raises(EOFError):
            await sse.next(3)
        assert sse.ended
        assert sse.task is not None
        await asyncio.wait_for(sse.task, 1)
    assert hub.subscribers == 0


# --- the page and its thresholds ---------------------------------------------------------------


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


async def test_thresholds_are_the_alert_engines(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/thresholds", params={"queue": "presales"})
    assert r.status_code == 200
    assert r.json() == {"queues": {"presales": thresholds_for("presales").to_json()}}
    every = (await client.get("/v1/thresholds")).json()
    assert sorted(every["queues"]) == ["aftersales", "presales"]


async def test_wallboard_page_and_assets_are_served_from_the_api(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "{{version}}" not in r.text
    assets = re.findall(r'(?:src|href)="(/wallboard/[^"?]+)\?v=[0-9a-f]{12}"', r.text)
    assert sorted(assets) == ["/wallboard/wallboard.css", "/wallboard/wallboard.js"]
    for path in assets:
        assert (await client.get(path)).status_code == 200
    # Offline machines: nothing from a CDN, no external fonts, no absolute URLs to fetch.
    external = re.compile(r"""(src|href)=["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(\s*["']https?:""")
    for f in STATIC.iterdir():
        assert not external.search(f.read_text(encoding="utf-8")), f


# --- the compact delta format (?delta=1) ------------------------------------------------------

leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3),
                 st.lists(st.integers(), max_size=3))
tree = st.recursive(leaf, lambda kids: st.dictionaries(st.sampled_from("abcde"), kids, max_size=4), max_leaves=12)


@given(tree, tree)
def test_a_patch_takes_old_to_new(old: Any, new: Any) -> None:
    change = patch(old, new)
    if change is NO_CHANGE:
        assert old == new
    elif change is None:  # new lost a key somewhere: the whole value is sent instead
        assert old != new
    else:
        assert apply_patch(old, change) == new


def test_a_patch_holds_only_what_changed() -> None:
    old = {"as_of": "t1", "live": {"open": 3, "waits": [1, 2]}, "windows": {"5m": {"span_s": 300.0, "frt": None}}}
    new = {"as_of": "t2", "live": {"open": 3, "waits": [1, 2, 3]}, "windows": {"5m": {"span_s": 301.0, "frt": None}}}
    assert patch(old, new) == {"as_of": "t2", "live": {"waits": [1, 2, 3]}, "windows": {"5m": {"span_s": 301.0}}}
    assert patch(old, {"as_of": "t2"}) is None  # keys went: no patch can say so


def test_views_delta_names_new_changed_and_removed_views() -> None:
    sent: dict[str, Any] = {}
    a, b = {"queue": "a", "n": 1}, {"queue": "b", "n": 1}
    assert views_delta(sent, [a, b]) == {"replace": {"a": a, "b": b}}
    assert views_delta(sent, [a, b]) == {}
    assert views_delta(sent, [{"queue": "a", "n": 2}]) == {"views": {"a": {"n": 2}}, "removed": ["b"]}
    assert sent == {"a": {"queue": "a", "n": 2}}


async def test_a_delta_stream_shows_what_a_full_stream_shows_in_a_fraction_of_the_bytes(
        app: FastAPI, store: ViewStore) -> None:
    async with SSEClient(app) as full, SSEClient(app, "delta=1") as delta:
        first = await delta.next_event("views")
        held = {v["queue"]: v for v in first["queues"]}
        signals = dict(first["signals"])
        await full.next_event("views")
        sizes: list[tuple[int, int]] = []
        for n in range(2, 5):  # (the store starts with one buyer waiting)
            await bump(store, awaiting_reply=n)
            shown = await full.next_event("views")
            d = await delta.next_event("delta")
            for q, p in d.get("views", {}).items():
                held[q] = apply_patch(held[q], p)
            held.update(d.get("replace", {}))
            for q in d.get("removed", []):
                held.pop(q)
                signals.pop(q, None)
            signals.update(d.get("signals", {}))
            assert [held[q] for q in sorted(held)] == shown["queues"]
            assert signals == shown["signals"]
            assert d["as_of"] == shown["as_of"] and "options" not in d  # the options did not change
            sizes.append((len(orjson.dumps(shown)), len(orjson.dumps(d))))
            assert d["views"] and all(p["live"] == {"awaiting_reply": n} for p in d["views"].values())
        await asyncio.sleep(0)
    assert all(small * 4 < big for big, small in sizes), sizes
