"""Run the ingest service: `python -m services.ingest` (127.0.0.1:INGEST_PORT, default 8081)."""

from __future__ import annotations

import uvicorn
from prometheus_client import disable_created_metrics

from services.core.httpserver import HttpServerSettings
from services.core.logs import setup_logging

from .app import create_app
from .settings import IngestSettings


def main() -> None:
    setup_logging("ingest")
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
    settings = IngestSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our JSON logging
        access_log=False,  # quiet at INFO: no line per request
        server_header=False,
        # Header deadline, keep-alive, head size and a concurrency cap (INGEST_HEADER_TIMEOUT_S, ... in .env.example).
        **HttpServerSettings.from_env("INGEST").uvicorn_kwargs(),
    )


if __name__ == "__main__":
    main()
