"""API settings from the environment (documented in .env.example)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.core.config import KafkaSettings, StaffingSettings, env_float, env_int, env_str


@dataclass(frozen=True)
class ApiSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    host: str = field(default_factory=lambda: env_str("API_HOST", "127.0.0.1"))  # 0.0.0.0 in a pod
    port: int = field(default_factory=lambda: env_int("API_PORT", 8080))
    token: str = field(default_factory=lambda: env_str("API_TOKEN", ""))
    # Views older than this are flagged stale on the wallboard and in /healthz.
    stale_after_s: float = field(default_factory=lambda: env_float("VIEW_STALE_AFTER_S", 10.0))
    staffing: StaffingSettings = field(default_factory=StaffingSettings)
