"""Per-event validation: the shared contract (`parse_event`) plus ingest's event-time policy.

Event-time policy (documented in the README and .env.example): an event whose `ts` lies more
than `max_future_s` ahead of the ingest host's clock (default 300 s: a sender with a wrong clock)
or more than `max_past_s` behind it (default 7 days: far older than any window the scorer
keeps) is rejected with 422 and counted as `ts_future` / `ts_past`. 0 disables a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.core.events import EVENT_TYPES, MAX_ID_LEN, ChatEvent, EventError, parse_event

from .body import RawItem


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    event_id: str | None
    code: str  # stable metric label: invalid_json, too_deep, not_object, unknown_type, bad_field, ts_future, ts_past,
    # wrong_tenant, too_large
    reason: str
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "event_id": self.event_id, "reason": self.reason}
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass(frozen=True, slots=True)
class TimePolicy:
    max_future_ms: int  # 0 disables
    max_past_ms: int  # 0 disables

    @classmethod
    def from_seconds(cls, max_future_s: float, max_past_s: float) -> TimePolicy:
        return cls(int(max_future_s * 1000), int(max_past_s * 1000))

    def check(self, ts_ms: int, now_ms: int) -> tuple[str, str] | None:
        ahead = ts_ms - now_ms
        if self.max_future_ms and ahead > self.max_future_ms:
            return "ts_future", (
                f"ts is {_span(ahead)} in the future (at most {_span(self.max_future_ms)} allowed); "
                "check the sender's clock and time zone"
            )
        if self.max_past_ms and -ahead > self.max_past_ms:
            return "ts_past", (
                f"ts is {_span(-ahead)} in the past (at most {_span(self.max_past_ms)} allowed); "
                "to replay older history raise INGEST_MAX_PAST_S"
            )
        return None


def _span(ms: int) -> str:
    s = ms / 1000
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 2 * 86_400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86_400:.1f} days"


def _echo_id(value: Any) -> str | None:
    """The event_id to quote back in an error, if the sender gave a string one."""
    if isinstance(value, dict):
        event_id = value.get("event_id")
        if isinstance(event_id, str):
            return event_id[:MAX_ID_LEN]
    return None


def validate(
    items: list[RawItem], policy: TimePolicy, now_ms: int, *, tenant: str | None = None
) -> tuple[list[ChatEvent], list[Rejected]]:
    """`tenant`: the tenant the caller's token is for (INGEST_TOKENS); an event of another is refused."""
    valid: list[ChatEvent] = []
    rejected: list[Rejected] = []
    for item in items:
        value = item.value
        if item.error is not None:
            rejected.append(Rejected(item.index, None, item.code, item.error, item.line))
            continue
        if not isinstance(value, dict):
            reason = f"an event must be a JSON object, got {type(value).__name__}"
            rejected.append(Rejected(item.index, None, "not_object", reason, item.line))
            continue
        try:
            event = parse_event(value)
        except EventError as exc:
            etype = value.get("type")
            code = "bad_field" if isinstance(etype, str) and etype in EVENT_TYPES else "unknown_type"
            rejected.append(Rejected(item.index, _echo_id(value), code, str(exc), item.line))
            continue
        if tenant is not None and event.tenant != tenant:
            reason = f"tenant {event.tenant[:40]!r} is not the tenant of this token ({tenant!r})"
            rejected.append(Rejected(item.index, event.event_id, "wrong_tenant", reason, item.line))
            continue
        verdict = policy.check(event.ts_ms, now_ms)
        if verdict is not None:
            rejected.append(Rejected(item.index, event.event_id, verdict[0], verdict[1], item.line))
            continue
        valid.append(event)
    return valid, rejected
