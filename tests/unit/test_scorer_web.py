"""The scorer's web server serves /metrics and /healthz only: Faust's table pages (raw state of every
conversation at /table/{table}/{key}/), router, stats and graph pages are off (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.scorer.app import build_app
from services.scorer.settings import ScorerSettings


def routes(tmp_path: Path) -> tuple[set[str], Any]:
    app = build_app(ScorerSettings(store="memory://", data_dir=tmp_path))
    web = app.web
    web.init_server()
    web_app = web.web_app  # type: ignore[attr-defined]  # the aiohttp driver's application
    paths = {r.resource.canonical for r in web_app.router.routes() if r.resource is not None}
    return paths, web_app


async def test_only_metrics_and_health_are_served(tmp_path: Path) -> None:
    paths, _ = routes(tmp_path)
    # "/" is Faust's production index, a constant {"status": "OK"}: no state behind it.
    assert paths <= {"/metrics", "/healthz", "/"}, sorted(paths)
    assert {"/metrics", "/healthz"} <= paths


async def test_table_pages_answer_404(tmp_path: Path) -> None:
    _, web_app = routes(tmp_path)
    async with TestClient(TestServer(web_app, host="127.0.0.1")) as client:
        for path in ("/table/", "/table/conversations/", "/table/conversations/c-1/", "/router/", "/stats/",
                     "/graph/"):
            resp = await client.get(path)
            assert resp.status == 404, (path, resp.status)
