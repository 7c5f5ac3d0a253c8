"""The platforms' reply-time rules: one home for their limits and counted hours.

JD counts the first reply within 30 s; Pinduoduo, Taobao and Tmall count every human reply
within 3 minutes, only for buyers who wrote between 08:00 and 23:00 (China time). Both are
measured like service levels, in rolling windows, and the alert rules read the same limits.
Override with PLATFORM_RULES (JSON: {"jd": {"first_reply_only": true, "limit_s": 30,
"hours": null}, "pdd": {"limit_s": 180, "hours": [8, 23]}, ...}).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import orjson

CHINA_UTC_OFFSET_MIN: Final = 8 * 60
_DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class PlatformRule:
    limit_s: float
    first_reply_only: bool = False  # JD counts the first reply; the others every reply
    hours: tuple[int, int] | None = None  # counted local hours [start, end); None = all day
    utc_offset_min: int = CHINA_UTC_OFFSET_MIN

    @property
    def limit_ms(self) -> int:
        return int(self.limit_s * 1000)

    def counts(self, wait_started_ms: int) -> bool:
        """Whether a buyer who started waiting at this moment is counted by the rule."""
        if self.hours is None:
            return True
        local_ms = (wait_started_ms + self.utc_offset_min * 60_000) % _DAY_MS
        start, end = self.hours
        return start * 3_600_000 <= local_ms < end * 3_600_000

    @property
    def name(self) -> str:
        return f"{'first_reply' if self.first_reply_only else 'reply'}_within_{self.limit_s:g}s"


DEFAULT_RULES: Final[dict[str, PlatformRule]] = {
    "jd": PlatformRule(30, first_reply_only=True),
    "pdd": PlatformRule(180, hours=(8, 23)),
    "taobao": PlatformRule(180, hours=(8, 23)),
    "tmall": PlatformRule(180, hours=(8, 23)),
}


def parse_rules(raw: str) -> dict[str, PlatformRule]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SystemExit(f"PLATFORM_RULES is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SystemExit("PLATFORM_RULES must be a JSON object keyed by platform")
    out = dict(DEFAULT_RULES)
    for platform, spec in data.items():
        if spec is None:
            out.pop(platform, None)
            continue
        try:
            hours = spec.get("hours")
            out[platform] = PlatformRule(
                limit_s=float(spec["limit_s"]),
                first_reply_only=bool(spec.get("first_reply_only", False)),
                hours=None if hours is None else (int(hours[0]), int(hours[1])),
                utc_offset_min=int(spec.get("utc_offset_min", CHINA_UTC_OFFSET_MIN)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SystemExit(f"PLATFORM_RULES[{platform!r}] is not a rule: {exc}") from None
    return out


@lru_cache(maxsize=4)
def _rules_for(raw: str | None) -> dict[str, PlatformRule]:
    return dict(DEFAULT_RULES) if not raw else parse_rules(raw)


def platform_rules() -> dict[str, PlatformRule]:
    return _rules_for(os.environ.get("PLATFORM_RULES"))


def rule_for(platform: str) -> PlatformRule | None:
    return platform_rules().get(platform)
