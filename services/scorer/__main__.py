"""Run one scorer worker: `python -m services.scorer` (settings from the environment)."""

from __future__ import annotations

import asyncio

import faust

from services.core.logs import setup_logging

from .app import build_app
from .settings import ScorerSettings, worker_data_dir
from .topics import ensure_changelog_topics


class Worker(faust.Worker):
    def _setup_logging(self) -> None:
        # Our structured JSON logs instead of mode's console format.
        setup_logging("scorer")


def main() -> None:
    setup_logging("scorer")
    settings = ScorerSettings()
    worker_data_dir(settings).mkdir(parents=True, exist_ok=True)
    if settings.event_loop == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")  # sets asyncio's loop policy: the loop made below is uvloop's
    loop = asyncio.new_event_loop()  # Faust runs on the loop current in this thread
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_changelog_topics(settings))
    app = build_app(settings)
    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
