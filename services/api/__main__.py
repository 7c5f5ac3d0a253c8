"""Run the API: `python -m services.api` (settings from the environment)."""

from __future__ import annotations

import uvicorn

from services.core.httpserver import HttpServerSettings
from services.core.logs import setup_logging

from .app import create_app
from .settings import ApiSettings


def main() -> None:
    setup_logging("api")
    settings = ApiSettings()
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False,
        server_header=False,
        # Header deadline, keep-alive, head size and a concurrency cap (API_HEADER_TIMEOUT_S, ... in .env.example):
        # above the SSE cap, so the open streams never use up the connections a probe needs.
        **HttpServerSettings.from_env("API", limit_concurrency=max(512, 4 * settings.sse_max_clients)).uvicorn_kwargs(),
    )


if __name__ == "__main__":
    main()
