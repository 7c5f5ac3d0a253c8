"""The platforms' reply-time rules: one home for their limits and counted hours (shared/METRICS.md).

A rule is a window figure like a service level, counted per buyer who needed a human reply (the
denominator METRICS.md names): JD counts the first reply within 30 s and leaves out sessions started
23:00-09:00 China time (its own 30 s rate); Pinduoduo, Taobao and Tmall count the first human reply
within 3 minutes for buyers who started waiting 08:00-23:00 (configurable to every wait with
"first_reply_only": false). Each counted wait has one outcome at one event time:
* met, at the reply, when the reply came within the limit;
* missed, at start + limit, when no reply had come by then (answered late, closed later, or still
  waiting: the miss is a fact from the moment the limit passes, whatever arrives afterwards);
* missed, at the close, when the conversation closed unanswered before the limit (abandoned, timed
  out, or closed by an agent without a reply). A `bot_resolved` close is not counted: the bot
  served the buyer, who never needed a human reply (as in the service level).
`outcome` gives it for a finished wait (a fact of the state machine); a wait still open is counted
from the live state by the view (`overdue`). docs/metrics-notes.md explains the choices.

Override with PLATFORM_RULES (JSON keyed by platform, null removes a rule): {"jd": {"limit_s": 30,
"hours": [9, 23]}, "pdd": {"limit_s": 180, "hours": [8, 23], "first_reply_only": false}, ...};
`hours` [start, end) are the local hours whose waits count (start > end wraps past midnight, null =
all day), local time is UTC + `utc_offset_min` (default 480, China time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import orjson

from .buckets import FRT, REPLY, UNANSWERED_BOT_CLOSED, UNANSWERED_CLOSED, WAIT_BOT_CLOSED, WAIT_CLOSED

CHINA_UTC_OFFSET_MIN: Final = 8 * 60
_DAY_MS: Final = 86_400_000
_HOUR_MS: Final = 3_600_000


@dataclass(frozen=True, slots=True)
class PlatformRule:
    limit_s: float
    first_reply_only: bool = True  # each buyer once, by their first wait (METRICS.md); False: every wait
    hours: tuple[int, int] | None = None  # counted local hours [start, end) of a wait's start; None = all day
    utc_offset_min: int = CHINA_UTC_OFFSET_MIN

    @property
    def limit_ms(self) -> int:
        return int(self.limit_s * 1000)

    def counts(self, wait_started_ms: int) -> bool:
        """Whether a buyer who started waiting at this moment is counted by the rule."""
        if self.hours is None:
            return True
        local_ms = (wait_started_ms + self.utc_offset_min * 60_000) % _DAY_MS
        start, end = self.hours[0] * _HOUR_MS, self.hours[1] * _HOUR_MS
        if start <= end:
            return start <= local_ms < end
        return local_ms >= start or local_ms < end  # e.g. [22, 6]: counted across midnight

    def outcome(self, kind: str, ts: int, value: int) -> tuple[int, bool] | None:
        """The rule's outcome (event time, met) of a fact that ends a wait, or None if it counts none.

        FRT / REPLY facts end a wait with a reply at `ts` after `value` ms; UNANSWERED_CLOSED /
        WAIT_CLOSED end one with a close at `ts` after `value` ms (never answered / waiting again)."""
        bot = kind in (UNANSWERED_BOT_CLOSED, WAIT_BOT_CLOSED)
        if kind == (FRT if self.first_reply_only else REPLY):
            replied = True
        elif kind in (UNANSWERED_CLOSED, UNANSWERED_BOT_CLOSED) or (
                kind in (WAIT_CLOSED, WAIT_BOT_CLOSED) and not self.first_reply_only):
            replied = False
        else:
            return None
        started = ts - value
        if not self.counts(started):
            return None
        deadline = started + self.limit_ms
        if ts <= deadline:
            # Within the limit: a reply met it, a close missed it, a bot that resolved it needed no human.
            return None if bot else (ts, replied)
        # Missed the moment the limit passed (1 ms after it: a reply at the limit is within it), not when the
        # reply or close came.
        return deadline + 1, False

    @property
    def name(self) -> str:
        return f"{'first_reply' if self.first_reply_only else 'reply'}_within_{self.limit_s:g}s"


DEFAULT_RULES: Final[dict[str, PlatformRule]] = {
    "jd": PlatformRule(30, first_reply_only=True, hours=(9, 23)),
    # METRICS.md: the denominator is the buyers who needed a human reply (PDD's 需人工回复的咨询人数), so
    # each buyer counts once, by their first wait; `"first_reply_only": false` counts every wait instead.
    "pdd": PlatformRule(180, first_reply_only=True, hours=(8, 23)),
    "taobao": PlatformRule(180, first_reply_only=True, hours=(8, 23)),
    "tmall": PlatformRule(180, first_reply_only=True, hours=(8, 23)),
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
            base = DEFAULT_RULES.get(platform)
            # A platform with a default rule changes only what it names; a new one needs its limit.
            hours = spec.get("hours", None if base is None else base.hours)
            rule = PlatformRule(
                limit_s=float(spec["limit_s"] if base is None or "limit_s" in spec else base.limit_s),
                first_reply_only=bool(spec.get("first_reply_only", base is None or base.first_reply_only)),
                hours=None if hours is None else (int(hours[0]), int(hours[1])),
                utc_offset_min=int(spec.get("utc_offset_min", CHINA_UTC_OFFSET_MIN)),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise SystemExit(f"PLATFORM_RULES[{platform!r}] is not a rule: {exc}") from None
        if not rule.limit_s > 0:
            raise SystemExit(f"PLATFORM_RULES[{platform!r}].limit_s must be > 0, got {rule.limit_s!r}")
        if rule.hours is not None and not (0 <= rule.hours[0] <= 24 and 0 <= rule.hours[1] <= 24):
            raise SystemExit(f"PLATFORM_RULES[{platform!r}].hours must be hours 0-24, got {list(rule.hours)}")
        out[platform] = rule
    return out


@lru_cache(maxsize=4)
def _rules_for(raw: str | None) -> dict[str, PlatformRule]:
    return dict(DEFAULT_RULES) if not raw else parse_rules(raw)


def platform_rules() -> dict[str, PlatformRule]:
    return _rules_for(os.environ.get("PLATFORM_RULES"))


def rule_for(platform: str) -> PlatformRule | None:
    return platform_rules().get(platform)
