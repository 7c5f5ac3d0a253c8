"""Ingest settings, read from environment variables (each documented in .env.example).

`IngestSettings()` reads the environment; tests pass explicit values instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from services.core.config import DEFAULT_INGEST_PORT, KafkaSettings, Topics, env_float, env_int, env_str
from services.core.limits import TenantLimits
from services.core.secrets import refuse_placeholders, require_secrets

from .adapters.common import AdapterConfig

MIB = 1024 * 1024
DAY_S = 86_400


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SystemExit(f"{name}={raw!r} must be true or false")


def parse_tenant_tokens(raw: str) -> dict[str, str]:
    """`acme=tok1,globex=tok2` → {"acme": "tok1", "globex": "tok2"}; a malformed entry stops the start."""
    out: dict[str, str] = {}
    for entry in raw.split(","):
        if not entry.strip():
            continue
        tenant, sep, token = entry.partition("=")
        tenant, token = tenant.strip(), token.strip()
        if not sep or not tenant or not token:
            raise SystemExit("INGEST_TOKENS must be tenant=token pairs separated by commas")
        if tenant in out:
            raise SystemExit(f"INGEST_TOKENS names tenant {tenant!r} twice")
        out[tenant] = token
    if len(set(out.values())) != len(out):
        raise SystemExit("INGEST_TOKENS gives two tenants the same token: each tenant needs its own")
    return out


@dataclass(frozen=True)
class IngestSettings:
    host: str = field(default_factory=lambda: env_str("INGEST_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: env_int("INGEST_PORT", DEFAULT_INGEST_PORT))
    # Bearer token for POST /v1/events. Empty: refuse all traffic unless allow_unauthenticated.
    token: str = field(default_factory=lambda: env_str("INGEST_TOKEN", ""))
    # Per-tenant tokens, `tenant=token` pairs separated by commas: a sender holding one may post events of
    # its tenant only. INGEST_TOKEN, when set too, stays a token for every tenant (the single-tenant default).
    tokens: dict[str, str] = field(default_factory=lambda: parse_tenant_tokens(env_str("INGEST_TOKENS", "")))
    allow_unauthenticated: bool = field(default_factory=lambda: env_bool("INGEST_ALLOW_UNAUTHENTICATED", False))
    max_body_bytes: int = field(default_factory=lambda: env_int("INGEST_MAX_BODY_BYTES", 5 * MIB))
    max_batch: int = field(default_factory=lambda: env_int("INGEST_MAX_BATCH", 5000))
    send_timeout_s: float = field(default_factory=lambda: env_float("INGEST_SEND_TIMEOUT_S", 10.0))
    dedupe_size: int = field(default_factory=lambda: env_int("INGEST_DEDUPE_SIZE", 1_000_000))
    dedupe_ttl_s: float = field(default_factory=lambda: env_float("INGEST_DEDUPE_TTL_S", 3600.0))
    # Event-time policy: reject ts further than this in the future / past (0 disables a check).
    max_future_s: float = field(default_factory=lambda: env_float("INGEST_MAX_FUTURE_S", 300.0))
    max_past_s: float = field(default_factory=lambda: env_float("INGEST_MAX_PAST_S", 7.0 * DAY_S))
    # /healthz asks the broker at most once per this many seconds.
    health_cache_s: float = field(default_factory=lambda: env_float("INGEST_HEALTH_CACHE_S", 2.0))
    # Producer tuning. One record batch per partition per request holds up to this many bytes;
    # keep it below the broker's message.max.bytes (1048588 by default). No linger: a request's records are
    # all queued before the producer's sender can run, and each partition's batch lingers on its own clock, so
    # a linger only split a request's records into two round trips now and then. Under load they batch anyway:
    # the producer keeps one request in flight to the broker, and what comes meanwhile goes in the next.
    kafka_linger_ms: int = field(default_factory=lambda: env_int("INGEST_KAFKA_LINGER_MS", 0))
    kafka_max_batch_bytes: int = field(default_factory=lambda: env_int("INGEST_KAFKA_MAX_BATCH_BYTES", 1_000_000))
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    # Names per tenant (queues, shops, agents) a sender may create: services/core/limits.py.
    limits: TenantLimits = field(default_factory=TenantLimits)
    topic: str = field(default_factory=lambda: Topics().events)
    # JSON nesting deeper than this is refused (422 too_deep) on every endpoint.
    max_json_depth: int = field(default_factory=lambda: env_int("INGEST_MAX_JSON_DEPTH", 64))
    # Webhooks (POST /v1/webhooks/{platform}). An empty secret refuses that platform's traffic (503),
    # except Chatwoot with CHATWOOT_ALLOW_UNSIGNED=true (servers before 4.11.2 do not sign).
    chatwoot_webhook_secret: str = field(default_factory=lambda: env_str("CHATWOOT_WEBHOOK_SECRET", ""))
    chatwoot_allow_unsigned: bool = field(default_factory=lambda: env_bool("CHATWOOT_ALLOW_UNSIGNED", False))
    chatwoot_replay_window_s: float = field(default_factory=lambda: env_float("CHATWOOT_REPLAY_WINDOW_S", 300.0))
    livechat_secret_key: str = field(default_factory=lambda: env_str("LIVECHAT_SECRET_KEY", ""))
    sunshine_api_key: str = field(default_factory=lambda: env_str("SUNSHINE_API_KEY", ""))
    # An identical delivery within this many seconds is a retry: it keeps the first one's arrival
    # time, so events without a platform timestamp or id map to the same event_ids.
    redelivery_window_s: float = field(default_factory=lambda: env_float("ADAPTER_REDELIVERY_WINDOW_S", 60.0))
    adapters: AdapterConfig = field(default_factory=AdapterConfig.from_env)

    def __post_init__(self) -> None:
        refuse_placeholders({
            "INGEST_TOKEN": self.token,
            **{f"INGEST_TOKENS[{tenant}]": token for tenant, token in self.tokens.items()},
            "CHATWOOT_WEBHOOK_SECRET": self.chatwoot_webhook_secret,
            "LIVECHAT_SECRET_KEY": self.livechat_secret_key,
            "SUNSHINE_API_KEY": self.sunshine_api_key,
        })
        require_secrets({"INGEST_TOKEN or INGEST_TOKENS": self.token + "".join(self.tokens.values())})
        for name in ("max_body_bytes", "max_batch", "dedupe_size", "kafka_max_batch_bytes", "max_json_depth"):
            if getattr(self, name) < 1:
                raise SystemExit(f"ingest setting {name} must be at least 1")
        if self.send_timeout_s <= 0:
            raise SystemExit("INGEST_SEND_TIMEOUT_S must be positive")
        if self.chatwoot_replay_window_s <= 0:
            raise SystemExit("CHATWOOT_REPLAY_WINDOW_S must be positive")
        if self.redelivery_window_s < 0:
            raise SystemExit("ADAPTER_REDELIVERY_WINDOW_S must not be negative")

    @property
    def auth_mode(self) -> str:
        """`token`, `open` (explicitly unauthenticated) or `unconfigured` (refuse everything)."""
        if self.token or self.tokens:
            return "token"
        return "open" if self.allow_unauthenticated else "unconfigured"
