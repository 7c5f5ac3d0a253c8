"""API settings from the environment (documented in .env.example)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from services.core.config import (
    DEFAULT_API_PORT,
    KafkaSettings,
    StaffingSettings,
    env_float,
    env_int,
    env_str,
)
from services.core.days import ScorecardTzError, scorecard_tz
from services.core.scorecard import ScorecardConfig
from services.core.scorecard_config import ScorecardConfigError, config_from_env
from services.core.secrets import refuse_placeholders, require_secrets

T = TypeVar("T")


def _refused_unless(load: Callable[[], T]) -> T:
    """A setting that cannot be used stops the service at start with the reason (and the line at fault)."""
    try:
        return load()
    except (ScorecardConfigError, ScorecardTzError) as exc:
        raise SystemExit(str(exc)) from None


@dataclass(frozen=True)
class ApiSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    host: str = field(default_factory=lambda: env_str("API_HOST", "127.0.0.1"))  # 0.0.0.0 in a pod
    port: int = field(default_factory=lambda: env_int("API_PORT", DEFAULT_API_PORT))
    token: str = field(default_factory=lambda: env_str("API_TOKEN", ""))
    # Optional: when set, every /v1 read (and the SSE stream) needs it, or the write token (docs/operations.md).
    read_token: str = field(default_factory=lambda: env_str("API_READ_TOKEN", ""))
    # Request bodies above this are refused with 413 before they are read (the API's only body is an ack).
    max_body_bytes: int = field(default_factory=lambda: env_int("API_MAX_BODY_BYTES", 16 * 1024))
    # Open /v1/stream connections beyond this are answered 503 (each costs a task and its payloads).
    sse_max_clients: int = field(default_factory=lambda: env_int("API_SSE_MAX_CLIENTS", 64))
    # Views older than this are flagged stale on the wallboard and in /healthz.
    stale_after_s: float = field(default_factory=lambda: env_float("VIEW_STALE_AFTER_S", 10.0))
    # /v1/stream sends a views frame at most this often per client (changes in between ride along): the scorer's
    # fast step publishes changed queue views every 0.25 s, so a slower stream would add to a figure's delay.
    stream_min_interval_s: float = field(default_factory=lambda: env_float("STREAM_MIN_INTERVAL_S", 0.25))
    staffing: StaffingSettings = field(default_factory=StaffingSettings)
    # The scorecard's targets, weights, grades and flags (SCORECARD_CONFIG...) and its local day (SCORECARD_TZ).
    scorecard: ScorecardConfig = field(default_factory=lambda: _refused_unless(config_from_env))
    scorecard_tz: str = field(default_factory=lambda: _refused_unless(scorecard_tz))

    def __post_init__(self) -> None:
        refuse_placeholders({
            "API_TOKEN": self.token, "API_READ_TOKEN": self.read_token, "AGENT_ID_SALT": env_str("AGENT_ID_SALT", "")
        })
        require_secrets({"API_TOKEN": self.token, "AGENT_ID_SALT": env_str("AGENT_ID_SALT", "")})
        if self.stream_min_interval_s < 0:
            raise SystemExit("STREAM_MIN_INTERVAL_S must not be negative")
        if self.max_body_bytes < 1 or self.sse_max_clients < 1:
            raise SystemExit("API_MAX_BODY_BYTES and API_SSE_MAX_CLIENTS must be at least 1")
