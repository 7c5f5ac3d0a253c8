"""The API's gate, a pure ASGI middleware that runs before any route reads a byte of the body.

- Writes (POST, PUT, PATCH, DELETE): the bearer `API_TOKEN` is checked on the headers alone, so a
  caller without it never gets its body read, parsed or echoed (401, or 503 when no token is set).
- Reads of `/v1/*` when `API_READ_TOKEN` is set: the read token (or the write token) as a bearer
  header, the `floorwatch_read` cookie, or an `access_token` query parameter (EventSource cannot
  send headers). Opening the wallboard page as `/?access_token=…` sets that cookie (HttpOnly,
  SameSite=Strict), so the page's own fetches and its stream carry it without any change to it.
- Bodies: a Content-Length above `max_body_bytes` is answered 413 before reading; a body streamed
  without one is counted as it arrives and answered 413 the moment it passes the limit (the route
  then sees a disconnect, and whatever it tries to answer is dropped). The 413 never quotes the body.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_COOKIE = "floorwatch_read"
# Paths a probe or Prometheus must reach without a token; the page and its static files carry no figures.
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
# The pages (the wallboard, the scorecard): no figures in them; opened with ?access_token=… they set the cookie.
PAGES = frozenset({"/", "/scorecard"})


def _same(given: str, wanted: str) -> bool:
    return bool(wanted) and hmac.compare_digest(given.encode(), wanted.encode())


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ],
    })
    await send({"type": "http.response.body", "body": body})


class _TooLarge:
    """The receive/send pair handed to the app while the body is counted."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.seen = 0
        self.refused = False  # we answered 413: the app's own answer goes nowhere
        self.started = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                if not self.started:
                    self.refused = True
                    await _answer(self._send, 413, f"body is larger than {self.limit} bytes")
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class ApiGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        write_token: str,
        read_token: str = "",
        max_body_bytes: int = 16 * 1024,
        on_refused: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.write_token = write_token
        self.read_token = read_token
        self.max_body_bytes = max_body_bytes
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        bearer = self._bearer(headers.get("authorization", ""))
        set_cookie: str | None = None
        if method in WRITE_METHODS:
            if not self.write_token:
                await self._refuse(send, 503, "API_TOKEN is not configured: writes are refused")
                return
            if not _same(bearer, self.write_token):
                await self._refuse(send, 401, "a valid bearer token is required",
                                   [(b"www-authenticate", b"Bearer")])
                return
        elif self.read_token and path not in OPEN_PATHS and not path.startswith("/wallboard/"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            from_query = (query.get("access_token") or [""])[0]
            cookie = SimpleCookie()
            try:
                cookie.load(headers.get("cookie", ""))
            except Exception:  # a malformed Cookie header is no credential, and no reason to fail
                cookie = SimpleCookie()
            from_cookie = cookie[READ_COOKIE].value if READ_COOKIE in cookie else ""
            if path in PAGES:
                # The page itself holds no figures; with a valid access_token it hands its scripts a cookie.
                if self._may_read(from_query):
                    secure = "; Secure" if scope.get("scheme") == "https" else ""
                    set_cookie = f"{READ_COOKIE}={from_query}; Path=/; HttpOnly; SameSite=Strict{secure}"
            elif not any(self._may_read(t) for t in (bearer, from_cookie, from_query)):
                await self._refuse(send, 401, "a valid read token is required (API_READ_TOKEN)",
                                   [(b"www-authenticate", b"Bearer")])
                return
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                await self._refuse(send, 400, "Content-Length is not a number")
                return
            if too_big:
                await self._refuse(send, 413, f"body is larger than {self.max_body_bytes} bytes")
                return
        gate = _TooLarge(receive, send, self.max_body_bytes)
        out: Send = gate.send
        if set_cookie is not None:
            cookie_header = (b"set-cookie", set_cookie.encode("latin-1"))

            async def out(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), cookie_header]}
                await gate.send(message)

        await self.app(scope, gate.receive, out)
        if gate.refused and self.on_refused is not None:
            self.on_refused(413)

    @staticmethod
    def _bearer(header: str) -> str:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def _may_read(self, token: str) -> bool:
        return bool(token) and (_same(token, self.read_token) or _same(token, self.write_token))

    async def _refuse(self, send: Send, status: int, detail: str,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
        if self.on_refused is not None:
            self.on_refused(status)
        await _answer(send, status, detail, headers)
