"""The live wallboard page (`GET /`, files under `/wallboard/`) and the thresholds it colours by.

The page is plain HTML, CSS and JavaScript in `static/` (no build step, nothing fetched from
outside this API). `GET /v1/thresholds[?queue=Q…]` gives each queue's alert thresholds exactly as
the alert engine uses them (`alert_config.thresholds_for(queue).to_json()`), so a tile turns amber
or red at the same figure that fires the alert (the figures judged come with the stream's `signals`).

Saved boards: `/?queues=a,b,jd-*` or `/?group=presales` (see `queue_matcher`) show only those queues;
the page passes them on to `GET /v1/stream`, which sends only their views. docs/wallboard.md says how
the page lays out, pages and orders a floor of any size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from services.core.alert_config import thresholds_for
from services.core.scope import is_agent_scope

from ..views import ViewStore

STATIC = Path(__file__).resolve().parent / "static"
MAX_QUEUE_PATTERNS = 200
_SEGMENTS = re.compile(r"[-_.:/ ]+")


def queue_matcher(queues: str | None, group: str | None) -> Callable[[str], bool] | None:
    """Which queues a saved board shows; None: every queue.

    `queues`: comma-separated queue names, each may use `*` as a wildcard (`jd-*`). `group`: a name
    that is the whole queue name or one of its segments split at `-`, `_`, `.`, `:`, `/` or a space
    (group `presales` is `presales`, `jd-presales` and `presales_vip`, not `preSalesX`), so a team's
    board needs no configuration as long as its queues are named after it. Both given: either matches.
    """
    patterns = [q.strip() for q in (queues or "").split(",") if q.strip()][:MAX_QUEUE_PATTERNS]
    name = (group or "").strip()
    if not patterns and not name:
        return None
    exact = {p for p in patterns if "*" not in p}
    globs = [p for p in patterns if "*" in p]

    def match(queue: str) -> bool:
        if queue in exact or any(fnmatchcase(queue, g) for g in globs):
            return True
        return bool(name) and (queue == name or name in _SEGMENTS.split(queue))

    return match


def _index_html(name: str = "index.html") -> str:
    """A page (index.html, scorecard.html) with its asset URLs versioned by content, so a TV picks up a new
    release."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return (STATIC / name).read_text(encoding="utf-8").replace("{{version}}", digest.hexdigest()[:12])


def mount_wallboard(app: FastAPI, store: ViewStore) -> None:
    router = APIRouter()
    page = _index_html()
    scorecard_page = _index_html("scorecard.html")

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def wallboard() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @router.get("/scorecard", response_class=HTMLResponse, include_in_schema=False)
    async def scorecard() -> HTMLResponse:
        """The scorecard page: leaderboards per platform (today, month), the budget left per shop (zh/en)."""
        return HTMLResponse(scorecard_page, headers={"Cache-Control": "no-cache"})

    @router.get("/v1/thresholds")
    async def thresholds(queue: Annotated[list[str] | None, Query(max_length=128)] = None) -> dict[str, Any]:
        """Alert thresholds per queue (the requested ones, else every queue with a view), as the
        alert engine applies them: `{"queues": {queue: {"oldest_wait": {...}, "sla_breach": {...},
        "peak_load": {...}, "staffing_gap": {...}}}}` (ALERT_RULES_FILE, or the defaults)."""
        # Agents' own views are no queues (and their ids may be e-mail addresses).
        names = sorted(set(queue) if queue else {k.queue for k in store.views if not is_agent_scope(k.queue)})
        try:
            return {"queues": {name: thresholds_for(name).to_json() for name in names}}
        except ValueError as exc:  # a bad ALERT_RULES_FILE: say so rather than colour by a guess
            raise HTTPException(503, f"alert thresholds unavailable: {exc}") from None

    app.include_router(router)
    app.mount("/wallboard", StaticFiles(directory=STATIC), name="wallboard")
