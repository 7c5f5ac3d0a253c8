"""Run the API: `python -m services.api` (settings from the environment)."""

from __future__ import annotations

import uvicorn

from services.core.logs import setup_logging

from .app import create_app
from .settings import ApiSettings


def main() -> None:
    setup_logging("api")
    settings = ApiSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
