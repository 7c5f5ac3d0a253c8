"""uvicorn's connection limits for ingest and the API, from the environment (documented in .env.example).

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) and the size of a request head
(h11's max incomplete event size) but has no timeout for a request head that trickles in: a client
sending one header byte at a time holds its connection for ever (slow loris), and so does one that
trickles a body. `HeaderTimeoutH11Protocol` closes a connection whose request line and headers are not
complete within `header_timeout_s` of its first byte (or of the connection), or whose body is not
complete within `body_timeout_s` of its head. `limit_concurrency` answers 503 beyond that many connections
or tasks, so a flood costs a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import env_float, env_int


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's head, and then one on its body."""

    # Set per server by a subclass (`HttpServerSettings.uvicorn_kwargs`).
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._timing: object = None  # the h11 state the running timer guards (IDLE: the head, SEND_BODY: the body)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(h11.IDLE, self.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm(h11.IDLE, self.header_timeout_s)  # a new request head begins (after a keep-alive pause, say)
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm(h11.SEND_BODY, self.body_timeout_s)  # the head is in: now the body has its deadline
        elif state is not h11.IDLE:
            self._disarm()  # the request is complete: the app's own limits take over

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, state: object, timeout_s: float) -> None:
        if self._timer is not None and self._timing is state:
            return  # this part's deadline runs already: more bytes do not extend it
        self._disarm()
        self._timing = state
        self._timer = self.loop.call_later(timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timing = None

    def _timed_out(self) -> None:
        guarded, self._timer, self._timing = self._timing, None, None
        if self.conn.their_state is guarded and not self.transport.is_closing():
            self.transport.close()


@dataclass(frozen=True)
class HttpServerSettings:
    """`{PREFIX}_HEADER_TIMEOUT_S`, `_BODY_TIMEOUT_S`, `_KEEP_ALIVE_S`, `_MAX_HEADER_BYTES`, `_LIMIT_CONCURRENCY`."""

    prefix: str
    header_timeout_s: float = 0.0
    body_timeout_s: float = 0.0
    keep_alive_s: int = 0
    max_header_bytes: int = 0
    limit_concurrency: int = 0

    @classmethod
    def from_env(cls, prefix: str, *, limit_concurrency: int = 512) -> HttpServerSettings:
        s = cls(
            prefix,
            header_timeout_s=env_float(f"{prefix}_HEADER_TIMEOUT_S", 10.0),
            body_timeout_s=env_float(f"{prefix}_BODY_TIMEOUT_S", 60.0),
            keep_alive_s=env_int(f"{prefix}_KEEP_ALIVE_S", 5),
            max_header_bytes=env_int(f"{prefix}_MAX_HEADER_BYTES", 16 * 1024),
            limit_concurrency=env_int(f"{prefix}_LIMIT_CONCURRENCY", limit_concurrency),
        )
        timeouts_ok = s.header_timeout_s > 0 and s.body_timeout_s > 0 and s.keep_alive_s >= 1
        if not timeouts_ok or s.max_header_bytes < 1024 or s.limit_concurrency < 1:
            raise SystemExit(
                f"{prefix}_HEADER_TIMEOUT_S and {prefix}_BODY_TIMEOUT_S must be > 0, {prefix}_KEEP_ALIVE_S ≥ 1, "
                f"{prefix}_MAX_HEADER_BYTES ≥ 1024 and {prefix}_LIMIT_CONCURRENCY ≥ 1"
            )
        return s

    def uvicorn_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `uvicorn.run` / `uvicorn.Config`."""
        protocol = type(
            "HeaderTimeoutH11", (HeaderTimeoutH11Protocol,),
            {"header_timeout_s": self.header_timeout_s, "body_timeout_s": self.body_timeout_s},
        )
        return {
            "http": protocol,
            "timeout_keep_alive": self.keep_alive_s,
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "limit_concurrency": self.limit_concurrency,
        }
