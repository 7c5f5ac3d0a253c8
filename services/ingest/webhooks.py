"""POST /v1/webhooks/{platform}: authenticate a platform's delivery, map it, send it down the batch path.

Order of checks (cheapest and least trusting first): platform known (404), a secret configured
(503), Sunshine's X-API-Key header (401), body size (413), Chatwoot's HMAC signature and replay
window over the raw body (401), JSON with a nesting limit (422), LiveChat's `secret_key` in the
body (401), then the adapter (422 for what it cannot map) and `Ingestor.ingest_items`: the same
validation, dedupe and acks=all produce as POST /v1/events. Every secret is compared in constant
time. What a platform sends that we do not use is acknowledged (202) and counted by event name.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request

from .adapters import ADAPTERS, AdapterError, Context, Mapped
from .adapters.common import Recall
from .body import BodyError, RawItem, check_content_length, loads_limited, read_limited
from .metrics import IngestMetrics
from .service import Ingestor, Outcome
from .settings import IngestSettings

log = logging.getLogger("floorwatch.ingest.webhooks")

PLATFORMS: Final = tuple(sorted(ADAPTERS))
MAX_ACCOUNT_LEN: Final = 64
SECRET_ENV: Final = {
    "chatwoot": "CHATWOOT_WEBHOOK_SECRET",
    "livechat": "LIVECHAT_SECRET_KEY",
    "sunshine": "SUNSHINE_API_KEY",
}


def _secret(settings: IngestSettings, platform: str) -> str:
    return {
        "chatwoot": settings.chatwoot_webhook_secret,
        "livechat": settings.livechat_secret_key,
        "sunshine": settings.sunshine_api_key,
    }[platform]


def auth_mode(settings: IngestSettings, platform: str) -> str:
    """`secret`, `unsigned` (Chatwoot accepting unsigned deliveries) or `unconfigured` (refuse)."""
    if _secret(settings, platform):
        return "secret"
    if platform == "chatwoot" and settings.chatwoot_allow_unsigned:
        return "unsigned"
    return "unconfigured"


def log_auth_modes(settings: IngestSettings) -> None:
    """One line per platform at start-up, so a refusing or unsigned endpoint is never a surprise."""
    for platform in PLATFORMS:
        mode = auth_mode(settings, platform)
        if mode == "unconfigured":
            log.warning(
                "webhook endpoint refuses all traffic with 503: no secret configured",
                extra={"platform": platform, "set": SECRET_ENV[platform]},
            )
        elif mode == "unsigned" or (platform == "chatwoot" and settings.chatwoot_allow_unsigned):
            log.warning(
                "CHATWOOT_ALLOW_UNSIGNED=true: POST /v1/webhooks/chatwoot accepts deliveries without a signature",
                extra={"platform": platform, "secret_configured": mode == "secret"},
            )
        else:
            log.info("webhook endpoint verifies deliveries", extra={"platform": platform})


class RecentDeliveries:
    """When each distinct delivery body was first seen, for `redelivery_window_s` (bounded)."""

    def __init__(self, window_s: float, max_size: int = 100_000) -> None:
        self.window_ms = int(window_s * 1000)
        self.max_size = max_size
        self._first: OrderedDict[bytes, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._first)

    def first_seen(self, key: bytes, now_ms: int) -> int:
        first = self._first
        while first:  # entries are in arrival order: expire from the front
            oldest_key, oldest_ms = next(iter(first.items()))
            if now_ms - oldest_ms <= self.window_ms and len(first) < self.max_size:
                break
            del first[oldest_key]
        seen = first.get(key)
        if seen is not None:
            return seen
        if self.window_ms > 0:
            first[key] = now_ms
        return now_ms


def _chatwoot_signature(secret: str, timestamp: str, raw: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()


def sign_chatwoot(secret: str, timestamp: int, raw: bytes) -> dict[str, str]:
    """The headers Chatwoot (>= 4.11.2) sends with a delivery: for tests and tools."""
    return {
        "X-Chatwoot-Signature": "sha256=" + _chatwoot_signature(secret, str(timestamp), raw),
        "X-Chatwoot-Timestamp": str(timestamp),
    }


class WebhookHandler:
    def __init__(
        self,
        settings: IngestSettings,
        ingestor: Ingestor,
        metrics: IngestMetrics,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ingestor = ingestor
        self.metrics = metrics
        self.recent = RecentDeliveries(settings.redelivery_window_s)
        self.recall = Recall()  # names and accounts earlier deliveries showed (adapters/common.py)
        self._warned: set[tuple[str, str, str]] = set()
        self._wall_clock = wall_clock

    def _refuse(self, status: int, code: str, reason: str, headers: dict[str, str] | None = None) -> Outcome:
        outcome = self.ingestor.refuse(BodyError(status, code, reason))
        outcome.headers.update(headers or {})
        return outcome

    def _check_chatwoot(self, request: Request, raw: bytes, mode: str) -> Outcome | None:
        signature = request.headers.get("x-chatwoot-signature")
        timestamp = request.headers.get("x-chatwoot-timestamp")
        if mode == "unsigned":
            return None  # no secret to check against: CHATWOOT_ALLOW_UNSIGNED was chosen
        if not signature or not timestamp:
            if self.settings.chatwoot_allow_unsigned:
                return None
            return self._refuse(401, "bad_signature", "missing X-Chatwoot-Signature or X-Chatwoot-Timestamp")
        try:
            sent_at = int(timestamp.strip())
        except ValueError:
            return self._refuse(401, "bad_signature", "X-Chatwoot-Timestamp is not Unix seconds")
        expected = _chatwoot_signature(self.settings.chatwoot_webhook_secret, timestamp.strip(), raw)
        presented = signature.strip().removeprefix("sha256=").lower()
        if not hmac.compare_digest(expected.encode(), presented.encode("ascii", "replace")):
            return self._refuse(401, "bad_signature", "X-Chatwoot-Signature does not match the body")
        window = self.settings.chatwoot_replay_window_s
        if abs(self._wall_clock() - sent_at) > window:
            return self._refuse(
                401, "stale_signature",
                f"X-Chatwoot-Timestamp is more than {window:g} s from now: a replay, or a clock off",
            )
        return None

    async def handle(self, platform: str, request: Request) -> Outcome:
        outcome = await self._handle(platform, request)
        self._log_first(platform, outcome)
        return outcome

    def _log_first(self, platform: str, outcome: Outcome) -> None:
        """A log line for the first accepted delivery of each platform and the first refusal of each
        kind (what a quick start checks: docs/quickstart-platforms.md); no line per request."""
        if platform not in ADAPTERS:
            return
        key = (platform, "answer", str(outcome.status))
        if key in self._warned:
            return
        self._warned.add(key)
        if outcome.status < 400:
            log.info("first webhook delivery accepted", extra={"platform": platform, "status": outcome.status})
        else:
            log.warning(
                "webhook delivery refused (later refusals with this status are counted, not logged)",
                extra={"platform": platform, "status": outcome.status, "reason": outcome.body.get("detail")},
            )

    async def _handle(self, platform: str, request: Request) -> Outcome:
        adapter = ADAPTERS.get(platform)
        if adapter is None:
            shown = platform[:40].encode("ascii", "backslashreplace").decode()
            known = ", ".join(PLATFORMS)
            return self._refuse(404, "unknown_platform", f"no webhook for platform {shown!r}; known: {known}")
        mode = auth_mode(self.settings, platform)
        if mode == "unconfigured":
            hint = ", or CHATWOOT_ALLOW_UNSIGNED=true for servers that do not sign" if platform == "chatwoot" else ""
            reason = f"{platform} webhook secret not configured (set {SECRET_ENV[platform]}{hint})"
            return self._refuse(503, "secret_not_configured", reason)
        if platform == "sunshine":
            presented = request.headers.get("x-api-key", "")
            if not hmac.compare_digest(presented.encode("utf-8", "replace"), self.settings.sunshine_api_key.encode()):
                return self._refuse(401, "unauthorized", "missing or wrong X-API-Key")
        account = request.query_params.get("account")
        if account is not None and (not 1 <= len(account) <= MAX_ACCOUNT_LEN or not account.isprintable()):
            return self._refuse(400, "bad_request", f"account must be 1..{MAX_ACCOUNT_LEN} printable characters")
        try:
            check_content_length(request.headers.get("content-length"), self.settings.max_body_bytes)
            raw = await read_limited(request.stream(), self.settings.max_body_bytes)
        except BodyError as err:
            return self.ingestor.refuse(err)
        if platform == "chatwoot":
            denied = self._check_chatwoot(request, raw, mode)
            if denied is not None:
                return denied
        if not raw.strip():
            return self._refuse(422, "invalid_json", "body is empty; a webhook delivery is a JSON object")
        try:
            payload = loads_limited(raw, self.settings.max_json_depth, "delivery")
        except BodyError as err:
            return self.ingestor.refuse(err)
        if platform == "livechat":
            secret = payload.get("secret_key") if isinstance(payload, dict) else None
            if not isinstance(secret, str) or not hmac.compare_digest(
                secret.encode("utf-8", "replace"), self.settings.livechat_secret_key.encode()
            ):
                return self._refuse(401, "unauthorized", "missing or wrong secret_key")
        now_ms = int(self._wall_clock() * 1000)
        received_ms = self.recent.first_seen(hashlib.sha256(platform.encode() + b"\0" + raw).digest(), now_ms)
        ctx = Context(received_ms=received_ms, config=self.settings.adapters, account=account, recall=self.recall)
        try:
            mapped = adapter(payload, ctx)
        except AdapterError as err:
            return self._refuse(422, "bad_payload", f"{platform}: {err}")
        self.recall.learn(mapped)
        self._report_assumed(platform, mapped)
        self.metrics.webhook_last_delivery.labels(platform).set(now_ms / 1000)
        for name in mapped.ignored:
            self.metrics.webhook_ignored.labels(platform, name).inc()
        if mapped.events:
            items = [RawItem(i, event) for i, event in enumerate(mapped.events)]
            outcome = await self.ingestor.ingest_items(items, atomic=False)
        else:
            outcome = Outcome(202, {"accepted": 0, "duplicates": 0})
        return self._merge(outcome, mapped.ignored, mapped.errors, len(mapped.events))

    def _report_assumed(self, platform: str, mapped: Mapped) -> None:
        """Count each assumption, and log it once per (platform, what, how) and process."""
        for what, how in mapped.assumed:
            self.metrics.webhook_assumed.labels(platform, what, how).inc()
            if (platform, what, how) in self._warned or how == "setting":
                continue
            self._warned.add((platform, what, how))
            used = "the account an earlier delivery showed for the inbox" if how == "inbox" else "account 'default'"
            log.warning(
                "Chatwoot delivery without an account id: counted under %s; set CHATWOOT_DEFAULT_ACCOUNT=<account id> "
                "or add ?account=<account id> to the webhook URL (Chatwoot: Settings > Integrations > Webhooks)",
                used, extra={"platform": platform, "assumed": what, "source": how, "set": "CHATWOOT_DEFAULT_ACCOUNT"},
            )

    def _merge(self, outcome: Outcome, ignored: list[str], errors: list[str], mapped: int) -> Outcome:
        body: dict[str, Any] = dict(outcome.body)
        body["mapped"] = mapped
        if ignored:
            body["ignored"] = ignored
        if errors:
            self.metrics.reject("bad_payload", len(errors))
            body["errors"] = [*body.get("errors", []), *({"reason": e} for e in errors)]
            if outcome.status == 202:
                detail = f"{len(errors)} events of the delivery could not be mapped; {body['accepted']} accepted"
                return Outcome(422, {"detail": detail, **body}, outcome.headers)
        return Outcome(outcome.status, body, outcome.headers)
