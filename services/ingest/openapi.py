"""OpenAPI descriptions of the raw request bodies (read by hand, so FastAPI cannot infer them).

They document what clients send and give schema-driven fuzzers (schemathesis) shapes to build
on; the server never trusts them: every body is checked by body.py, validate.py and the adapters.
"""

from __future__ import annotations

from typing import Any, Final

from services.core.events import AGENT_STATUSES, CLOSE_REASONS, EVENT_TYPES, MAX_EPOCH_MS, MIN_EPOCH_MS, SENDERS

from .adapters import chatwoot, livechat, sunshine

_NAME: Final = {"type": "string", "minLength": 1, "maxLength": 128}

EVENT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "One chat event (shared/EVENTS.md); unknown fields are ignored.",
    "required": ["event_id", "type", "ts", "shop_id", "platform"],
    "properties": {
        "event_id": _NAME,
        "type": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "ts": {
            "oneOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "minimum": MIN_EPOCH_MS, "maximum": MAX_EPOCH_MS},
            ]
        },
        "tenant": _NAME,
        "shop_id": _NAME,
        "platform": {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"},
        "conversation_id": _NAME,
        "queue": _NAME,
        "customer_id": _NAME,
        "channel": _NAME,
        "sender": {"type": "string", "enum": sorted(SENDERS)},
        "agent_id": _NAME,
        "chars": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
        "to_queue": _NAME,
        "to_agent_id": _NAME,
        "reason": {"type": "string", "enum": sorted(CLOSE_REASONS)},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "amount": {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,4})?$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "status": {"type": "string", "enum": sorted(AGENT_STATUSES)},
        "capacity": {"type": "integer", "minimum": 1, "maximum": 1000},
        "queues": {"type": "array", "items": _NAME, "maxItems": 64},
    },
}

EVENTS_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [EVENT_SCHEMA, {"type": "array", "items": EVENT_SCHEMA, "maxItems": 50}]}
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "one event object per line"}},
        },
    }
}

_ID: Final = {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "minLength": 1, "maxLength": 40}]}
_TIME: Final = {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}, {"type": "number"}]}

CHATWOOT_DELIVERY: Final[dict[str, Any]] = {
    "type": "object",
    "title": "Chatwoot delivery",
    "required": ["event"],
    "properties": {
        "event": {"type": "string", "enum": sorted(chatwoot.EVENTS)},
        "id": _ID,
        "account": {"type": "object", "properties": {"id": _ID}},
        "inbox": {"type": "object", "properties": {"id": _ID}},
        "inbox_id": _ID,
        "status": {"type": "string", "enum": ["open", "pending", "resolved", "snoozed"]},
        "message_type": {"type": "string", "enum": ["incoming", "outgoing", "template", "activity"]},
        "content": {"type": ["string", "null"]},
        "content_type": {"type": "string"},
        "private": {"type": "boolean"},
        "created_at": _TIME,
        "updated_at": _TIME,
        "sender": {"type": ["object", "null"], "properties": {"id": _ID, "type": {"type": "string"}}},
        "conversation": {
            "type": "object",
            "properties": {"id": _ID, "inbox_id": _ID, "messages": {"type": "array", "maxItems": 3}},
        },
        "messages": {"type": "array", "items": {"type": "object", "properties": {"account_id": _ID}}, "maxItems": 3},
        "meta": {"type": "object"},
        "changed_attributes": {"type": ["array", "null"], "items": {"type": "object"}, "maxItems": 5},
    },
}

LIVECHAT_DELIVERY: Final[dict[str, Any]] = {
    "type": "object",
    "title": "LiveChat delivery (authenticated by secret_key)",
    "required": ["action", "secret_key", "payload"],
    "properties": {
        "webhook_id": {"type": "string"},
        "secret_key": {"type": "string"},
        "action": {"type": "string", "enum": sorted(livechat.EVENTS)},
        "organization_id": {"type": "string", "minLength": 1, "maxLength": 40},
        "payload": {
            "type": "object",
            "properties": {
                "chat_id": {"type": "string"},
                "thread_id": {"type": "string"},
                "agent_id": {"type": "string"},
                "status": {"type": "string", "enum": ["accepting_chats", "not_accepting_chats", "offline"]},
                "event": {"type": "object"},
                "chat": {"type": "object"},
                "user": {"type": "object"},
                "transferred_to": {"type": "object"},
            },
        },
        "additional_data": {"type": "object"},
    },
}

SUNSHINE_DELIVERY: Final[dict[str, Any]] = {
    "type": "object",
    "title": "Sunshine Conversations delivery",
    "required": ["app", "events"],
    "properties": {
        "app": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
        "webhook": {"type": "object"},
        "events": {
            "type": "array",
            "maxItems": 5,
            "items": {
                "type": "object",
                "required": ["id", "type"],
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string", "enum": sorted(sunshine.EVENTS)},
                    "createdAt": _TIME,
                    "payload": {"type": "object"},
                },
            },
        },
    },
}

WEBHOOK_EXTRA: Final[dict[str, Any]] = {
    "parameters": [
        {"name": "account", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Chatwoot: the account id, for conversation events (they do not name it)"},
        {"name": "X-Chatwoot-Signature", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "Chatwoot: sha256=<hex HMAC-SHA256(CHATWOOT_WEBHOOK_SECRET, '<timestamp>.<raw body>')>"},
        {"name": "X-Chatwoot-Timestamp", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "Chatwoot: Unix seconds; outside CHATWOOT_REPLAY_WINDOW_S of now is a replay"},
        {"name": "X-API-Key", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "Sunshine Conversations: the webhook's shared secret (SUNSHINE_API_KEY)"},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"anyOf": [CHATWOOT_DELIVERY, LIVECHAT_DELIVERY, SUNSHINE_DELIVERY]}}
        },
    },
}
