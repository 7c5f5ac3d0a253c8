"""Zendesk Sunshine Conversations (v2 webhooks) -> chat events (see README.md in this folder).

One delivery `{app, webhook, events: [...]}` carries several events; each maps on its own and a
bad one is reported (422 with its index) without holding back the others. Ids are scoped by the
app: conversation_id = `sunshine:{app}:{conversation}`; event_ids come from Sunshine's event id
(`events[].id`, documented as the key for spotting retried deliveries) or, for messages, the
message id.

Queues: the integration (channel) a conversation came in through: Sunshine names it by
`source.type` (`web`, `whatsapp`, ...) beside its `integrationId`, so the queue is that type
unless ADAPTER_QUEUE_MAP maps the integration id; `queue_source_id` keeps
`sunshine:{app}:integration:{id}`. (The switchboard's names say who controls a conversation,
bot or agents, not where it queues.)

Who is human: Sunshine's switchboard says which integration controls a conversation. Control
passed to or accepted by an integration named in SUNSHINE_AGENT_INTEGRATIONS (names, ids or
integration types; default Zendesk's agent workspace) is a bot-to-human handoff; a business
message without `author.subtypes` is an agent's when such an integration is in control, else a
bot's.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from .common import (
    AdapterError,
    Base,
    Context,
    Mapped,
    QueueRef,
    clean_name,
    delivery_object,
    dispatch,
    ident,
    obj,
    opt_ident,
    scoped,
    text_len,
    ts_or,
)

PLATFORM: Final = "sunshine"
EVENTS: Final = frozenset(
    {
        "conversation:create", "conversation:message", "conversation:read", "conversation:typing",
        "conversation:message:delivery:user", "conversation:message:delivery:channel",
        "conversation:message:delivery:failure", "conversation:postback", "conversation:join",
        "conversation:leave", "conversation:remove", "conversation:referral", "switchboard:passControl",
        "switchboard:passControl:failure", "switchboard:offerControl", "switchboard:offerControl:failure",
        "switchboard:acceptControl", "switchboard:acceptControl:failure", "switchboard:releaseControl",
        "user:merge", "user:update", "user:remove", "client:add", "client:update", "client:remove",
    }
)
_BOT_SUBTYPES: Final = frozenset({"bot", "ai", "AI"})
MAX_EVENTS: Final = 1000  # Sunshine batches a handful; more is not a Sunshine delivery


class _App:
    def __init__(self, app_id: str, ctx: Context) -> None:
        self.id = app_id
        self.ctx = ctx
        self.base = Base(ctx.config.tenant_for(PLATFORM, app_id), scoped(PLATFORM, app_id), PLATFORM)

    def human(self, active: dict[str, Any]) -> bool:
        names = self.ctx.config.sunshine_agent_integrations
        return any(isinstance(active.get(k), str) and active[k] in names for k in ("name", "integrationType", "id"))

    def queue(self, source: dict[str, Any], out: Mapped) -> QueueRef:
        ref = self.ctx.config.resolve_queue(
            PLATFORM, self.id, ("integration", source.get("integrationId"), source.get("type"))
        )
        out.queues_seen.append((f"{PLATFORM}:{self.id}", ref.queue))
        return ref


class _Event(NamedTuple):
    """What every handled event has: its type, event_id, time, payload and conversation."""

    type: str
    id: str
    ts: int
    payload: dict[str, Any]
    conversation: dict[str, Any]
    conv: str


def _conversation_create(app: _App, ev: _Event, out: Mapped) -> None:
    source = obj(ev.payload.get("source"))
    user = opt_ident(obj(ev.payload.get("user")).get("id"), "user.id")
    queue = app.queue(source, out)
    out.events.append(
        app.base.event(
            "conversation.opened", ev.id, ev.ts, conversation_id=ev.conv, queue=queue.queue,
            queue_source_id=queue.source_id,
            customer_id=scoped(PLATFORM, app.id, "user", user) if user else None,
            channel=clean_name(source.get("type")),
        )
    )


def _conversation_message(app: _App, ev: _Event, out: Mapped) -> None:
    message = obj(ev.payload.get("message"))
    author = obj(message.get("author"))
    message_id = ident(message.get("id"), "message.id")
    ts = ts_or(message.get("received"), "message.received", ev.ts)
    content = obj(message.get("content"))
    fields: dict[str, Any] = {
        "conversation_id": ev.conv,
        "chars": text_len(content.get("text")) if content.get("type") in ("text", None) else None,
    }
    kind = author.get("type")
    if kind == "user":
        fields["sender"] = "customer"
        fields["queue"], fields["queue_source_id"] = app.queue(obj(message.get("source")), out)
        user = opt_ident(author.get("userId"), "author.userId")
        fields["customer_id"] = scoped(PLATFORM, app.id, "user", user) if user else None
    elif kind == "business":
        subtypes = author.get("subtypes")
        subtypes = {s for s in subtypes if isinstance(s, str)} if isinstance(subtypes, list) else set()
        if "agent" in subtypes:
            human = True
        elif subtypes & _BOT_SUBTYPES:
            human = False
        else:
            human = app.human(obj(ev.conversation.get("activeSwitchboardIntegration")))
        fields["sender"] = "agent" if human else "bot"
        if human:
            who = opt_ident(author.get("userId"), "author.userId") or clean_name(author.get("displayName"))
            fields["agent_id"] = scoped(PLATFORM, app.id, "agent", who or "business")
    else:
        raise AdapterError(f"message author.type must be user or business, got {str(kind)[:20]!r}")
    out.events.append(app.base.event("message", scoped(PLATFORM, app.id, "msg", message_id), ts, **fields))


def _release_control(app: _App, ev: _Event, out: Mapped) -> None:
    if ev.payload.get("reason") == "ticketClosed":
        closed = app.base.event("conversation.closed", ev.id, ev.ts, conversation_id=ev.conv, reason="resolved")
        out.events.append(closed)
    else:
        out.ignored.append(ev.type)  # released without closing (or no reason given)


def _control_to(app: _App, ev: _Event, out: Mapped) -> None:
    """passControl / acceptControl: a handoff when the integration now in control is a human one."""
    if app.human(obj(ev.conversation.get("activeSwitchboardIntegration"))):
        out.events.append(app.base.event("conversation.handoff", ev.id, ev.ts, conversation_id=ev.conv))
    else:
        out.ignored.append(ev.type)  # control went to a bot or to an integration not named as human


_HANDLERS: Final = {
    "conversation:create": _conversation_create,
    "conversation:message": _conversation_message,
    "switchboard:passControl": _control_to,
    "switchboard:acceptControl": _control_to,
    "switchboard:releaseControl": _release_control,
}


def _one(app: _App, event: object, out: Mapped) -> None:
    event = obj(event)
    found = dispatch(event, "type", _HANDLERS, out, known=EVENTS, unnamed="event without a type")
    if found is None:
        return
    etype, handler = found
    event_id = scoped(PLATFORM, app.id, "ev", ident(event.get("id"), "event id"))
    ts = ts_or(event.get("createdAt"), "createdAt", app.ctx.received_ms)
    p = obj(event.get("payload"))
    conversation = obj(p.get("conversation"))
    conv = scoped(PLATFORM, app.id, ident(conversation.get("id"), "conversation.id"))
    handler(app, _Event(etype, event_id, ts, p, conversation, conv), out)


def adapt(payload: object, ctx: Context) -> Mapped:
    payload = delivery_object(payload, "Sunshine Conversations")
    app_id = ident(obj(payload.get("app")).get("id"), "app.id")
    events = payload.get("events")
    if not isinstance(events, list):
        raise AdapterError("a Sunshine Conversations delivery lists its events in `events`")
    if len(events) > MAX_EVENTS:
        raise AdapterError(f"{len(events)} events in one delivery; at most {MAX_EVENTS}")
    app = _App(app_id, ctx)
    out = Mapped()
    for index, event in enumerate(events):
        try:
            _one(app, event, out)
        except AdapterError as err:
            out.errors.append(f"events[{index}]: {err}")
    return out
