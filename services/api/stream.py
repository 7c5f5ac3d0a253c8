"""Server-Sent Events for the wallboard: queue views as they change, and alert changes.

`GET /v1/stream[?tenant=&shop_id=&platform=][&queues=a,b*][&group=G]` (filters as in `GET /v1/queues`;
`queues`/`group` keep only the queues of a saved wallboard, `wallboard.queue_matcher`) sends:

- `event: views`, first on connect and then whenever the view store changes, coalesced: at most one
  per `min_interval_s` (STREAM_MIN_INTERVAL_S, 0.25 s), and within `min_interval_s` of a change, so several a second
  while anything changes. Data: `{"as_of", "server_time", "stale_after_s", "queues": [QueueView, …],
  "signals": {queue: Signals}, "options": {"queues", "platforms", "shops": [{"tenant", "shop_id",
  "platform"}, …]}}`. `server_time` lets a client measure the data's age on the server's clock, not
  its own. `signals` are what the alert rules judge for each view (ρ, overload, staffing gap, …), as
  the scorer published them with the view (`judged`, with each rule's level), so a wallboard colours
  by the very figures and levels the alerts fire on.
- with `delta=1`, after the first `views`: `event: delta` instead, only what changed since the last
  frame (`services/api/delta.py`): `{"as_of", "server_time", "stale_after_s", "views": {queue: patch},
  "replace": {queue: QueueView}, "removed": [queue], "signals": {queue: Signals} (changed ones),
  "options" (if changed)}`. Most of a view stands still between ticks: a frame is a few % of a full one.
- `event: alerts`, data `{"alerts": [Alert, …]}`: the alerts that changed, each by `id` with its
  `state`, whenever the alert code calls `app.state.stream.publish_alerts(alerts)`. Nothing is sent
  until it does. Changes that pile up while a client is slow are coalesced by alert id.
- a comment line (`: heartbeat`) after `heartbeat_s` (15 s) without any write, so proxies keep it open.

One watcher task per hub (not per client) waits on the store's `changed` condition and wakes every
subscriber; it runs only while someone is subscribed. A client that goes away cancels its generator
(Starlette listens for the disconnect), which unsubscribes it; the last one out cancels the watcher.
When uvicorn is asked to exit, open streams end within a second, so a wallboard left open on a TV
never holds the server's graceful shutdown.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import StreamingResponse

from services.core.figures import QueueView
from services.core.merge import iso
from services.core.scope import ALL, is_agent_scope

from .delta import views_delta
from .params import Filter
from .views import ViewStore
from .wallboard import queue_matcher


def sse_frame(event: str, data: Any) -> bytes:
    """One SSE message; orjson never writes a raw newline, so the data is a single `data:` line."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def uvicorn_exiting() -> bool:
    """True once uvicorn has been told to exit (SIGINT/SIGTERM while it serves).

    uvicorn installs its `Server.handle_exit` as the signal handler while it serves and waits for
    open connections before it shuts down; an endless stream would hold it until the supervisor's
    SIGKILL. Its server object is reachable through that handler, nowhere else.
    """
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return bool(getattr(server, "should_exit", False))


class _Subscriber:
    __slots__ = ("alerts", "views_dirty", "wake")

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.views_dirty = False
        self.alerts: dict[str, dict[str, Any]] = {}


class StreamHub:
    def __init__(
        self,
        store: ViewStore,
        *,
        stale_after_s: float = 10.0,
        min_interval_s: float = 0.25,
        heartbeat_s: float = 15.0,
        exit_check_s: float = 1.0,
        exiting: Callable[[], bool] = uvicorn_exiting,
    ) -> None:
        self.store = store
        self.stale_after_s = stale_after_s
        self.min_interval_s = min_interval_s
        self.heartbeat_s = heartbeat_s
        self.exit_check_s = exit_check_s
        self.exiting = exiting
        self._subs: set[_Subscriber] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._alert_seq = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    # --- the alert code's hook -----------------------------------------------------------------
    def publish_alerts(self, alerts: Sequence[Mapping[str, Any] | Any]) -> None:
        """Send these alert changes (each with `id` and `state`) to every open stream: dicts, or
        objects with `to_json()` (`services.core.alerts.Alert`)."""
        if not alerts or not self._subs:
            return
        keyed: list[tuple[str, dict[str, Any]]] = []
        for item in alerts:
            alert: dict[str, Any] = dict(item.to_json() if hasattr(item, "to_json") else item)
            key = alert.get("id")
            if key is None:
                self._alert_seq += 1
                key = f"_anon{self._alert_seq}"
            keyed.append((str(key), alert))
        for sub in self._subs:
            sub.alerts.update(keyed)
            sub.wake.set()

    # --- subscription --------------------------------------------------------------------------
    def _join(self, sub: _Subscriber) -> None:
        self._subs.add(sub)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="stream-watcher")

    def _leave(self, sub: _Subscriber) -> None:
        self._subs.discard(sub)
        if not self._subs and self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _watch(self) -> None:
        store = self.store
        seen = store.version
        while True:
            async with store.changed:
                while store.version == seen:
                    await store.changed.wait()
                seen = store.version
            for sub in self._subs:
                sub.views_dirty = True
                sub.wake.set()

    # --- payloads ------------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """What the filters can choose from: every queue, platform and shop the store has views for."""
        queues, platforms, shops = set(), set(), set()
        for key in self.store.views:
            if is_agent_scope(key.queue):
                continue  # an agent's own view is no queue to pick (and its id may be an e-mail address)
            queues.add(key.queue)
            if key.platform != ALL:
                platforms.add(key.platform)
            if key.shop_id != ALL:
                shops.add((key.tenant, key.shop_id, key.platform))
        return {
            "queues": sorted(queues),
            "platforms": sorted(platforms),
            "shops": [{"tenant": t, "shop_id": s, "platform": p} for t, s, p in sorted(shops, key=lambda x: x[1:])],
        }

    @staticmethod
    def signals(view: QueueView) -> dict[str, Any] | None:
        """The alert rules' reading of one view, as the scorer judged it (`judged.signals`; None if it
        has none): the API judges nothing itself, so the board and the pages cannot disagree."""
        verdict = view.get("judged")
        reading = verdict.get("signals") if verdict else None
        return reading if isinstance(reading, dict) else None

    def views_payload(
        self, tenant: str | None, shop_id: str | None, platform: str | None,
        queues: str | None = None, group: str | None = None,
    ) -> dict[str, Any]:
        selected = self.store.select(None, tenant, shop_id, platform)
        if (wanted := queue_matcher(queues, group)) is not None:
            selected = [v for v in selected if wanted(v["queue"])]
        now = iso(int(time.time() * 1000))
        return {
            "as_of": max((v["as_of"] for v in selected), default=None),
            "server_time": now,
            "stale_after_s": self.stale_after_s,
            "filters": {"tenant": tenant, "shop_id": shop_id, "platform": platform, "queues": queues, "group": group},
            "queues": selected,
            "signals": {v["queue"]: self.signals(v) for v in selected},
            "options": self.options(),
        }

    @staticmethod
    def _delta(payload: dict[str, Any], held: dict[str, Any], held_rest: dict[str, Any]) -> dict[str, Any]:
        """A `delta` frame taking the client from what it holds (`held` views by queue, `held_rest`
        signals and options) to `payload`; both are updated to it."""
        copy = orjson.loads(orjson.dumps([payload["queues"], payload["signals"], payload["options"]]))
        out = {k: payload[k] for k in ("as_of", "server_time", "stale_after_s")}
        out.update(views_delta(held, copy[0]))
        old_signals = held_rest.get("signals", {})
        changed = {q: s for q, s in copy[1].items() if q not in old_signals or old_signals[q] != s}
        if changed:
            out["signals"] = changed
        if copy[2] != held_rest.get("options"):
            out["options"] = copy[2]
        held_rest.update(signals=copy[1], options=copy[2])
        return out

    # --- one client ----------------------------------------------------------------------------
    async def events(
        self, tenant: str | None = None, shop_id: str | None = None, platform: str | None = None,
        queues: str | None = None, group: str | None = None, delta: bool = False,
    ) -> AsyncIterator[bytes]:
        sub = _Subscriber()
        self._join(sub)
        loop = asyncio.get_running_loop()
        try:
            first = self.views_payload(tenant, shop_id, platform, queues, group)
            yield b"retry: 3000\n" + sse_frame("views", first)
            # Compared as bytes: a store may update its view dicts in place.
            last_sent = orjson.dumps([first["queues"], first["options"]])
            # A delta stream's copy of what the client holds (copies, for the same reason).
            held: dict[str, Any] = {}
            held_rest: dict[str, Any] = {}
            if delta:
                self._delta(first, held, held_rest)
            last_views = last_write = loop.time()
            while True:
                wait = min(self.exit_check_s, max(0.0, last_write + self.heartbeat_s - loop.time()))
                if wait > 0:
                    try:
                        async with asyncio.timeout(wait):
                            await sub.wake.wait()
                    except TimeoutError:
                        pass
                if self.exiting():
                    return
                sub.wake.clear()
                if sub.alerts:
                    changed, sub.alerts = list(sub.alerts.values()), {}
                    yield sse_frame("alerts", {"alerts": changed})
                    last_write = loop.time()
                if sub.views_dirty:
                    hold = last_views + self.min_interval_s - loop.time()
                    if hold > 0:
                        await asyncio.sleep(hold)  # coalesce: later changes ride along with this one
                    sub.views_dirty = False
                    payload = self.views_payload(tenant, shop_id, platform, queues, group)
                    content = orjson.dumps([payload["queues"], payload["options"]])
                    if content != last_sent:
                        last_sent = content
                        yield sse_frame("delta", self._delta(payload, held, held_rest)) if delta \
                            else sse_frame("views", payload)
                        last_views = last_write = loop.time()
                if loop.time() - last_write >= self.heartbeat_s:
                    yield b": heartbeat\n\n"
                    last_write = loop.time()
        finally:
            self._leave(sub)


def mount_stream(app: FastAPI, store: ViewStore, stale_after_s: float = 10.0, max_clients: int = 64,
                 min_interval_s: float = 0.25) -> StreamHub:
    """Add `GET /v1/stream`; the hub (with `publish_alerts`) is also `app.state.stream`. Streams beyond
    `max_clients` (API_SSE_MAX_CLIENTS) are answered 503: each open one costs a task and its payloads."""
    hub = StreamHub(store, stale_after_s=stale_after_s, min_interval_s=min_interval_s)
    router = APIRouter()

    @router.get(
        "/v1/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "views and alerts events"},
                   503: {"description": "API_SSE_MAX_CLIENTS streams are open already (Retry-After)"}},
    )
    async def stream(
        tenant: Filter = None, shop_id: Filter = None, platform: Filter = None,
        queues: Annotated[str | None, Query(max_length=4096)] = None, group: Filter = None,
        delta: Annotated[bool, Query()] = False,
    ) -> StreamingResponse:
        """Server-Sent Events of queue views (`views`) and alert changes (`alerts`) for the wallboard;
        `queues` (comma-separated names, `*` wildcards) and `group` keep a saved board's queues; `delta=1`
        sends what changed (`delta` frames, services/api/delta.py) after the first `views`."""
        if hub.subscribers >= max_clients:
            raise HTTPException(503, f"at most {max_clients} open streams; try again later",
                                headers={"Retry-After": "10"})
        return StreamingResponse(
            hub.events(tenant, shop_id, platform, queues, group, delta),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app.include_router(router)
    app.state.stream = hub
    return hub
