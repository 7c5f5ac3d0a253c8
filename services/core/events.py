"""The chat event contract, version 1 (shared/EVENTS.md): parsing, validation, normalisation.

`parse_event` turns one decoded JSON object into a `ChatEvent` or raises `EventError` with a
reason a person can act on. `ChatEvent.to_record` is the normalised Kafka value: `ts` becomes
integer epoch milliseconds so the scorer never parses dates on its hot path.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple

import orjson

from .scope import AGENT_PREFIX, ALL

EVENT_TYPES: Final = frozenset(
    {
        "conversation.opened",
        "message",
        "conversation.assigned",
        "conversation.handoff",
        "conversation.transferred",
        "conversation.closed",
        "csat.rated",
        "order.placed",
        "agent.status",
    }
)
SENDERS: Final = frozenset({"customer", "agent", "bot"})
CLOSE_REASONS: Final = frozenset({"resolved", "abandoned", "timeout", "bot_resolved"})
# In the order figures list them (time per status, the wallboard's agent counts).
AGENT_STATUS_ORDER: Final = ("online", "busy", "away", "offline")
AGENT_STATUSES: Final = frozenset(AGENT_STATUS_ORDER)

MAX_ID_LEN: Final = 128
MAX_NAME_LEN: Final = 128
MAX_QUEUES_PER_AGENT: Final = 64
MAX_REASON_LEN: Final = 256
# `amount` as sent (a string or a JSON number's text): plenty for any order, far from a poison record.
MAX_AMOUNT_LEN: Final = 32
MAX_AMOUNT: Final = Decimal(10) ** 15
# Names the scorer uses itself: `*` is "all" in every roll-up key, and queues starting with the agent
# scope prefix (services.core.buckets.AGENT_PREFIX, "@agent:") hold an agent's own figures. A sender's
# tenant, shop, platform or queue spelled like them would merge into those figures.
RESERVED_PREFIX: Final = AGENT_PREFIX
# Epoch-ms bounds that catch seconds-vs-milliseconds mistakes (2001-09-09 .. 2286-11-20): the contract's range
# for every timestamp (events, platform deliveries, the simulator's start).
MIN_EPOCH_MS: Final = 1_000_000_000_000
MAX_EPOCH_MS: Final = 9_999_999_999_999
_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
# Conversations and agents are per tenant: their state (and Kafka record) key is the pair (tenant, id), joined
# by the ASCII unit separator, which no tenant or id can hold (both are printable, docs/events-bounds.md).
STATE_KEY_SEP: Final = "\x1f"


def state_key(tenant: str, ident: str) -> str:
    """The key of a conversation's or an agent's state: two tenants' "c1" (or "a1") are two keys."""
    return f"{tenant}{STATE_KEY_SEP}{ident}"


def split_state_key(key: str) -> tuple[str, str]:
    """(tenant, id) of a `state_key`."""
    tenant, sep, ident = key.partition(STATE_KEY_SEP)
    if not sep:
        raise ValueError(f"not a state key: {key[:40]!r}")
    return tenant, ident


class EventError(ValueError):
    """An event that breaks the contract; `str(err)` is the reason shown to the sender."""


class ChatEvent(NamedTuple):
    """One validated event (immutable; a tuple: built per event in ingest and again in the scorer, where a
    frozen dataclass's field-by-field constructor cost half of `parse_event`)."""

    event_id: str
    type: str
    ts_ms: int
    tenant: str
    shop_id: str
    platform: str
    conversation_id: str | None = None
    queue: str | None = None
    customer_id: str | None = None
    channel: str | None = None
    sender: str | None = None
    agent_id: str | None = None
    chars: int | None = None
    to_queue: str | None = None
    to_agent_id: str | None = None
    reason: str | None = None
    score: int | None = None
    amount: str | None = None
    currency: str | None = None
    status: str | None = None
    capacity: int | None = None
    queues: tuple[str, ...] | None = None
    # The platform's id of what named `queue` / `to_queue` (a team, inbox, group), for joins.
    queue_source_id: str | None = None
    to_queue_source_id: str | None = None

    @property
    def key(self) -> str:
        """The Kafka record key and the scorer's state key: the tenant's conversation, or the tenant's agent for
        `agent.status` (`state_key`). One conversation's records share it, so they share a partition."""
        if self.type == "agent.status":
            assert self.agent_id is not None
            return state_key(self.tenant, self.agent_id)
        assert self.conversation_id is not None
        return state_key(self.tenant, self.conversation_id)

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "ts": self.ts_ms,
            "tenant": self.tenant,
            "shop_id": self.shop_id,
            "platform": self.platform,
        }
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if name == "queues" else value
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_record())


_OPTIONAL_FIELDS: Final = (
    "conversation_id",
    "queue",
    "customer_id",
    "channel",
    "sender",
    "agent_id",
    "chars",
    "to_queue",
    "to_agent_id",
    "reason",
    "score",
    "amount",
    "currency",
    "status",
    "capacity",
    "queues",
    "queue_source_id",
    "to_queue_source_id",
)


def parse_ts(value: object) -> int:
    """RFC 3339 with an offset, or integer epoch milliseconds -> epoch milliseconds."""
    if isinstance(value, bool):
        raise EventError("ts must be an RFC 3339 string with offset or integer epoch milliseconds")
    if isinstance(value, int):
        if not MIN_EPOCH_MS <= value <= MAX_EPOCH_MS:
            raise EventError(
                f"ts {value} is not epoch milliseconds (expected 13 digits; seconds need *1000)"
            )
        return value
    if isinstance(value, str):
        if not _RFC3339.match(value):
            raise EventError(
                f"ts {value[:40]!r} is not RFC 3339 with an offset, e.g. 2026-11-11T00:00:05.120+08:00"
            )
        text = value
        frac = re.search(r"\.(\d+)", text)
        if frac and len(frac.group(1)) > 6:  # Python parses at most microseconds
            text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError as exc:
            raise EventError(f"ts {value[:40]!r} is not a valid date: {exc}") from None
        return int(parsed.timestamp() * 1000 + (0.5 if parsed.timestamp() >= 0 else -0.5))
    raise EventError("ts must be an RFC 3339 string with offset or integer epoch milliseconds")


def _text(obj: dict[str, Any], name: str, *, required: bool, limit: int = MAX_NAME_LEN) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise EventError(f"{name} is required for {obj.get('type')}")
        return None
    if not isinstance(value, str):
        raise EventError(f"{name} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= limit:
        raise EventError(f"{name} must be 1..{limit} characters, got {len(value)}")
    if not value.isprintable():
        raise EventError(f"{name} must not contain control characters")
    return value


def _not_reserved(name: str, value: str | None) -> str | None:
    if value is not None and (value == ALL or value.startswith(RESERVED_PREFIX)):
        raise EventError(
            f"{name} {value[:40]!r} is a reserved name ({ALL!r} and names starting with "
            f"{RESERVED_PREFIX!r} are the scorer's own)"
        )
    return value


def _int(obj: dict[str, Any], name: str, *, required: bool, low: int, high: int) -> int | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise EventError(f"{name} is required for {obj.get('type')}")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise EventError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _choice(obj: dict[str, Any], name: str, allowed: frozenset[str], *, required: bool) -> str | None:
    value = _text(obj, name, required=required)
    if value is not None and value not in allowed:
        raise EventError(f"{name} must be one of {', '.join(sorted(allowed))}; got {value!r}")
    return value


def _amount(obj: dict[str, Any]) -> str:
    value = obj.get("amount")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise EventError("amount is required for order.placed as a decimal number or string")
    if len(str(value)) > MAX_AMOUNT_LEN:
        raise EventError(f"amount must be at most {MAX_AMOUNT_LEN} characters, got {len(str(value))}")
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise EventError(f"amount {str(value)[:40]!r} is not a decimal number") from None
    if not dec.is_finite() or dec < 0 or dec >= MAX_AMOUNT:
        raise EventError(f"amount must be a finite, non-negative decimal below {MAX_AMOUNT:,}")
    return str(dec)


def _queues(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("queues")
    if not isinstance(value, list):
        raise EventError("queues is required for agent.status as a list of queue names")
    if len(value) > MAX_QUEUES_PER_AGENT:
        raise EventError(f"queues may list at most {MAX_QUEUES_PER_AGENT} names")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not 1 <= len(item) <= MAX_NAME_LEN or not item.isprintable():
            raise EventError("queues must hold queue names (1..128 printable characters)")
        out.append(_not_reserved("queues[]", item) or item)
    return tuple(dict.fromkeys(out))


def parse_event(obj: object) -> ChatEvent:
    """Validate one decoded JSON object against the contract."""
    if not isinstance(obj, dict):
        raise EventError(f"an event must be a JSON object, got {type(obj).__name__}")
    event_id = _text(obj, "event_id", required=True, limit=MAX_ID_LEN)
    etype = obj.get("type")
    if not isinstance(etype, str) or etype not in EVENT_TYPES:
        raise EventError(f"type must be one of {', '.join(sorted(EVENT_TYPES))}; got {str(etype)[:40]!r}")
    if "ts" not in obj:
        raise EventError("ts is required")
    ts_ms = parse_ts(obj["ts"])
    tenant = _text(obj, "tenant", required=False) or "default"
    shop_id = _text(obj, "shop_id", required=True)
    platform = _text(obj, "platform", required=True)
    assert event_id is not None and shop_id is not None and platform is not None
    if platform != platform.lower():
        raise EventError(f"platform must be lower-case, got {platform!r}")

    is_agent_status = etype == "agent.status"
    fields: dict[str, Any] = {
        "conversation_id": _text(obj, "conversation_id", required=not is_agent_status, limit=MAX_ID_LEN),
        "queue": _text(obj, "queue", required=etype == "conversation.opened"),
        "customer_id": _text(obj, "customer_id", required=False, limit=MAX_ID_LEN),
        "channel": _text(obj, "channel", required=False),
        "agent_id": _text(obj, "agent_id", required=False, limit=MAX_ID_LEN),
        "queue_source_id": _text(obj, "queue_source_id", required=False, limit=MAX_ID_LEN),
    }
    if etype == "message":
        sender = _choice(obj, "sender", SENDERS, required=True)
        fields["sender"] = sender
        if sender == "agent" and fields["agent_id"] is None:
            raise EventError("agent_id is required when sender is agent")
        fields["chars"] = _int(obj, "chars", required=False, low=0, high=1_000_000)
    elif etype == "conversation.assigned":
        fields["agent_id"] = _text(obj, "agent_id", required=True, limit=MAX_ID_LEN)
    elif etype == "conversation.transferred":
        fields["to_queue"] = _text(obj, "to_queue", required=True)
        fields["to_queue_source_id"] = _text(obj, "to_queue_source_id", required=False, limit=MAX_ID_LEN)
        fields["to_agent_id"] = _text(obj, "to_agent_id", required=False, limit=MAX_ID_LEN)
        fields["reason"] = _text(obj, "reason", required=False, limit=MAX_REASON_LEN)
    elif etype == "conversation.closed":
        fields["reason"] = _choice(obj, "reason", CLOSE_REASONS, required=True)
    elif etype == "csat.rated":
        fields["score"] = _int(obj, "score", required=True, low=1, high=5)
    elif etype == "order.placed":
        fields["amount"] = _amount(obj)
        currency = _text(obj, "currency", required=True)
        if currency is None or not _CURRENCY.match(currency):
            raise EventError(f"currency must be an ISO 4217 code like CNY, got {currency!r}")
        fields["currency"] = currency
    elif is_agent_status:
        fields["agent_id"] = _text(obj, "agent_id", required=True, limit=MAX_ID_LEN)
        fields["status"] = _choice(obj, "status", AGENT_STATUSES, required=True)
        fields["capacity"] = _int(obj, "capacity", required=True, low=1, high=1000)
        fields["queues"] = _queues(obj)
    for name, value in (("tenant", tenant), ("shop_id", shop_id), ("platform", platform),
                        ("queue", fields["queue"]), ("to_queue", fields.get("to_queue"))):
        _not_reserved(name, value)
    return ChatEvent(
        event_id=event_id, type=etype, ts_ms=ts_ms, tenant=tenant, shop_id=shop_id, platform=platform,
        **fields,
    )


def event_from_record(raw: bytes) -> ChatEvent:
    """Decode a normalised Kafka value back into an event (the scorer's entry point)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"record is not JSON: {exc}") from None
    return parse_event(obj)
