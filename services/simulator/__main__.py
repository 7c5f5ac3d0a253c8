"""Drive the floor model against an ingest service: `python -m services.simulator --help`.

Runs `FloorModel` from wall-clock now, in real time (events are sent as they happen, `ts` = real
time) or as fast as the ingest takes them (`--fast`; with `--duration-s` the run is laid in the past
so that it ends now, without it event time runs ahead of the clock). Batches
are POSTed as a JSON array to `{ingest}/v1/events`. Retries (429, 5xx, connection errors) resend the
same bytes, so the same event_ids: the ingest deduplicates. Any other 4xx stops the run with the
server's reason. Ctrl-C or SIGTERM stops generating, delivers what was already generated (for up
to 5 s) and exits 0; a second Ctrl-C exits at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final, TextIO

import httpx
import orjson

from services.simulator.model import Event, FloorModel, SimConfig

PROGRESS_EVERY_S: Final = 2.0
TICK_S: Final = 0.2  # realtime: how often the model is advanced and what happened is sent
FAST_STEP_MS: Final = 1_000  # fast: simulated time per model step
MAX_BACKOFF_S: Final = 30.0
MAX_RETRY_AFTER_S: Final = 300.0
STOP_FLUSH_S: Final = 5.0  # after Ctrl-C/SIGTERM: time left to deliver what was generated
HTTP_TIMEOUT_S: Final = 10.0
EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_INTERRUPTED: Final = 130


class Refused(Exception):
    """The ingest refused a batch in a way that retrying cannot fix (4xx other than 429)."""


class Stopped(Exception):
    """Asked to stop while a batch was still undelivered."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.simulator",
        description="Simulated customer-service floor traffic, POSTed to the ingest service.",
    )
    parser.add_argument(
        "--ingest",
        default=os.environ.get("INGEST_URL") or "http://127.0.0.1:8081",
        help="ingest base URL (default: $INGEST_URL or http://127.0.0.1:8081)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("INGEST_TOKEN") or None,
        help="bearer token for the ingest (default: $INGEST_TOKEN; none: no Authorization header)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument(
        "--base-rate", type=float, default=2.0, help="conversations per second across the floor (default: 2)"
    )
    parser.add_argument("--rate-factor", type=float, default=1.0, help="multiplier on the base rate (default: 1.0)")
    parser.add_argument("--peak", action="store_true", help="ramp arrivals to 2x over the peak window")
    parser.add_argument(
        "--peak-start-s", type=float, default=60.0, help="peak window start, seconds after start (default: 60)"
    )
    parser.add_argument("--peak-minutes", type=float, default=3.0, help="peak window length (default: 3)")
    parser.add_argument(
        "--duration-s", type=float, default=None, help="simulated seconds to run (default: until Ctrl-C)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--realtime", dest="fast", action="store_false", help="events happen at wall-clock time (default)"
    )
    mode.add_argument(
        "--fast",
        dest="fast",
        action="store_true",
        help="as fast as the ingest takes them; with --duration-s the run ends now, else it runs ahead",
    )
    parser.set_defaults(fast=False)
    parser.add_argument("--batch", type=int, default=200, help="max events per POST (default: 200)")
    parser.add_argument(
        "--start-ms",
        type=int,
        default=None,
        help=(
            "floor start in epoch ms; same seed and start replay the same event_ids (default: now; with "
            "--fast and --duration-s: now minus the duration, so the run ends now)"
        ),
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    if args.rate_factor < 0 or args.base_rate < 0:
        parser.error("--rate-factor and --base-rate must be >= 0")
    if args.duration_s is not None and args.duration_s <= 0:
        parser.error("--duration-s must be > 0")
    if args.peak and args.peak_minutes <= 0:
        parser.error("--peak-minutes must be > 0")
    if not args.ingest.startswith(("http://", "https://")):
        parser.error(f"--ingest {args.ingest!r} must be an http:// or https:// URL")
    return args


@dataclass
class Counters:
    sent: int = 0  # events in batches the ingest answered 2xx
    accepted: int = 0
    duplicates: int = 0
    retries: int = 0
    batches: int = 0


class Console:
    """Progress on stderr: one line redrawn with \\r on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._width = 0  # length of the progress line on screen (tty only)

    def progress(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, line: str) -> None:
        self.end_line()
        self.stream.write(line + "\n")
        self.stream.flush()

    def end_line(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self._width = 0


def retry_after_s(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta-seconds or an HTTP date), capped; None if absent/bad."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def server_reason(response: httpx.Response, limit: int = 600) -> str:
    """What the server said about a refused batch, short enough for one terminal line or two."""
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:limit] if text else "(empty body)"
    if isinstance(body, dict):
        errors = body.get("errors")
        for key in ("detail", "reason", "error", "errors", "message"):
            if key in body:
                body = body[key]
                break
        if isinstance(body, str) and isinstance(errors, list) and errors:
            body = f"{body}; first: {orjson.dumps(errors[:3]).decode()}"  # 422: which event and why
    if isinstance(body, str):
        return body[:limit]
    return orjson.dumps(body).decode()[:limit]


class Sender:
    """POSTs batches, retrying what can be retried with backoff; the body of a retry is unchanged."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        token: str | None,
        counters: Counters,
        console: Console,
        *,
        backoff_base_s: float = 0.5,
    ) -> None:
        self.client = client
        self.url = url
        self.headers = {"content-type": "application/json"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self.counters = counters
        self.console = console
        self.backoff_base_s = backoff_base_s
        self.stop = asyncio.Event()
        self.give_up_at: float | None = None  # monotonic deadline once asked to stop

    def request_stop(self, grace_s: float = STOP_FLUSH_S) -> None:
        if not self.stop.is_set():
            self.give_up_at = time.monotonic() + grace_s
            self.stop.set()

    def _remaining(self) -> float | None:
        if self.give_up_at is None:
            return None
        remaining = self.give_up_at - time.monotonic()
        if remaining <= 0:
            raise Stopped
        return remaining

    def _backoff_s(self, attempt: int) -> float:
        ceiling = min(MAX_BACKOFF_S, self.backoff_base_s * 2.0 ** min(attempt, 16))
        return ceiling * random.uniform(0.5, 1.0)  # jitter: not the model's RNG, not reproducible

    async def send(self, batch: list[Event]) -> None:
        body = orjson.dumps(batch)
        attempt = 0
        while True:
            remaining = self._remaining()
            timeout = HTTP_TIMEOUT_S if remaining is None else min(HTTP_TIMEOUT_S, remaining)
            try:
                response = await self.client.post(self.url, content=body, headers=self.headers, timeout=timeout)
            except httpx.TransportError as exc:
                problem = f"ingest unreachable ({type(exc).__name__}: {exc or 'no detail'})"
                delay = self._backoff_s(attempt)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self._count(response, len(batch))
                    return
                if status == 429 or status >= 500:
                    hint = retry_after_s(response)
                    delay = self._backoff_s(attempt) if hint is None else hint
                    problem = f"ingest answered {status} {response.reason_phrase}".rstrip()
                else:
                    raise Refused(
                        f"ingest refused a batch of {len(batch)} events: {status} "
                        f"{response.reason_phrase}: {server_reason(response)}"
                    )
            attempt += 1
            self.counters.retries += 1
            if attempt == 1 or attempt % 10 == 0:
                self.console.message(f"{problem}; retry {attempt} in {delay:.1f} s (same event_ids)")
            await self._pause(delay)

    async def _pause(self, delay_s: float) -> None:
        remaining = self._remaining()
        if remaining is not None:
            delay_s = min(delay_s, remaining)
            await asyncio.sleep(delay_s)
            self._remaining()  # raises Stopped once the grace period is over
            return
        with contextlib.suppress(TimeoutError):
            # A stop request cuts the wait short; the retry then runs against the grace deadline.
            await asyncio.wait_for(self.stop.wait(), delay_s)

    def _count(self, response: httpx.Response, n: int) -> None:
        self.counters.sent += n
        self.counters.batches += 1
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            accepted, duplicates = body.get("accepted"), body.get("duplicates")
            self.counters.accepted += accepted if isinstance(accepted, int) else 0
            self.counters.duplicates += duplicates if isinstance(duplicates, int) else 0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def default_start_ms(args: argparse.Namespace) -> int:
    """Now; but a bounded fast run is laid in the past so that it ends now.

    The ingest rejects events more than INGEST_MAX_FUTURE_S (default 300 s) ahead of its clock, and
    windows ending "now" then hold the whole run. An unbounded --fast run starts now and runs ahead
    of the clock: give the ingest INGEST_MAX_FUTURE_S=0 for that.
    """
    now = _wall_ms()
    if args.fast and args.duration_s is not None:
        return now - int(args.duration_s * 1000)
    return now


def progress_line(counters: Counters, model: FloorModel, rate: float) -> str:
    stats = model.stats()
    return (
        f"sent {counters.sent:,} events ({rate:,.0f}/s), {counters.retries:,} retries, "
        f"open conversations {stats.open:,}, waiting {stats.waiting:,}, peak x{stats.peak_factor:.1f}"
    )


async def _report(counters: Counters, model: FloorModel, console: Console) -> None:
    last_sent, last_t = counters.sent, time.monotonic()
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        now = time.monotonic()
        rate = (counters.sent - last_sent) / max(1e-9, now - last_t)
        last_sent, last_t = counters.sent, now
        console.progress(progress_line(counters, model, rate))


async def _pump(args: argparse.Namespace, model: FloorModel, sender: Sender) -> int:
    """Advance the model and send what happened; returns how many generated events were not sent."""
    stop = sender.stop
    end_ms = None if args.duration_s is None else model.config.start_ms + round(args.duration_s * 1000)
    pending: deque[Event] = deque()
    low_water = args.batch * 4
    try:
        while True:
            if not stop.is_set():
                target: int | None = None
                if not args.fast:
                    target = _wall_ms()
                elif len(pending) < low_water:
                    target = model.now_ms + FAST_STEP_MS
                if target is not None:
                    if end_ms is not None:
                        target = min(target, end_ms)
                    pending.extend(model.events_until(target))
            finished = stop.is_set() or (end_ms is not None and model.now_ms >= end_ms)
            while pending and (len(pending) >= args.batch or not args.fast or finished):
                chunk = [pending.popleft() for _ in range(min(args.batch, len(pending)))]
                try:
                    await sender.send(chunk)
                except Stopped:
                    pending.extendleft(reversed(chunk))
                    raise
                if stop.is_set() and not finished:
                    break  # re-enter as finished: flush against the grace deadline
            if finished and not pending:
                return 0
            if not args.fast:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_S)
            else:
                await asyncio.sleep(0)  # let signals and the progress line run
    except Stopped:
        return len(pending)


async def run(
    args: argparse.Namespace,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    stream: TextIO | None = None,
    handle_signals: bool = False,
    backoff_base_s: float = 0.5,
) -> int:
    console = Console(stream if stream is not None else sys.stderr)
    start_ms = default_start_ms(args) if args.start_ms is None else args.start_ms
    model = FloorModel(
        SimConfig(
            start_ms=start_ms,
            seed=args.seed,
            base_rate=args.base_rate,
            rate_factor=args.rate_factor,
            peak=args.peak,
            peak_start_s=args.peak_start_s,
            peak_minutes=args.peak_minutes,
        )
    )
    url = args.ingest.rstrip("/") + "/v1/events"
    counters = Counters()
    began = time.monotonic()
    interrupted = False
    async with httpx.AsyncClient(transport=transport, timeout=HTTP_TIMEOUT_S) as client:
        sender = Sender(client, url, args.token, counters, console, backoff_base_s=backoff_base_s)
        pump = asyncio.create_task(_pump(args, model, sender))
        reporter = asyncio.create_task(_report(counters, model, console))
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            nonlocal interrupted
            if sender.stop.is_set():
                interrupted = True
                pump.cancel()
            else:
                console.message("stopping: delivering what was generated (Ctrl-C again to quit now)")
                sender.request_stop()

        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, on_signal)
        console.message(
            f"simulating run {model.run_id} ({'fast' if args.fast else 'realtime'}, seed {args.seed}, "
            f"{model.config.base_rate * args.rate_factor:g} conversations/s"
            f"{', peak' if args.peak else ''}) -> {url}"
        )
        try:
            undelivered = await pump
        except Refused as exc:
            console.message(str(exc))
            return EXIT_REFUSED
        except asyncio.CancelledError:
            if not interrupted:
                raise
            undelivered = -1
        finally:
            reporter.cancel()
            for sig in signals:
                loop.remove_signal_handler(sig)
            elapsed = max(1e-9, time.monotonic() - began)
            console.end_line()
    tail = f", {undelivered:,} generated events not delivered" if undelivered > 0 else ""
    console.message(
        f"{'interrupted' if interrupted else 'done'}: sent {counters.sent:,} events in {elapsed:.1f} s "
        f"({counters.sent / elapsed:,.0f}/s; accepted {counters.accepted:,}, duplicates "
        f"{counters.duplicates:,}), {counters.retries:,} retries, simulated "
        f"{(model.now_ms - start_ms) / 1000:,.1f} s{tail}"
    )
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args, handle_signals=True))
    except KeyboardInterrupt:  # before the handlers were installed
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
