"""Chatwoot webhooks -> chat events (see README.md in this folder for the full table).

Ids are scoped by account: Chatwoot's conversation ids are per-account display ids. Message
events carry `account.id`; conversation events do not, so the account is taken from their
`messages[].account_id`, from `changed_attributes.account_id` (on creation) or from the webhook
URL's `?account=` (a Chatwoot webhook belongs to one account, so set it there). Without any of
those (a widget opens the conversation before its first message) it is CHATWOOT_DEFAULT_ACCOUNT,
else the account an earlier delivery showed for the conversation's inbox, else `default`: the
arrival is counted rather than refused (Chatwoot does not retry a 4xx), and the assumption is
reported in `Mapped.assumed` for the webhook layer to count and log.

Queues: the conversation's team (`meta.team.name`), else its inbox (`inbox.name` of message
events; conversation events carry only `inbox_id`, so the name an earlier delivery showed for
that inbox), else `team-<id>` / `inbox-<id>`; ADAPTER_QUEUE_MAP overrides.
"""

from __future__ import annotations

from typing import Any, Final

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

PLATFORM: Final = "chatwoot"
EVENTS: Final = frozenset(
    {
        "conversation_created",
        "conversation_updated",
        "conversation_status_changed",
        "message_created",
        "message_updated",
        "webwidget_triggered",
        "contact_created",
        "contact_updated",
        "conversation_typing_on",
        "conversation_typing_off",
    }
)
_BOT_SENDERS: Final = frozenset({"agent_bot", "captain_assistant", "AgentBot", "Captain::Assistant"})
DEFAULT_ACCOUNT: Final = "default"
_INCOMING: Final = ("incoming", 0)
_OUTGOING: Final = ("outgoing", 1)


def _inbox_of(payload: dict[str, Any]) -> str | None:
    conv = obj(payload.get("conversation")) or payload
    return opt_ident(conv.get("inbox_id", obj(payload.get("inbox")).get("id")), "inbox id")


def _account(payload: dict[str, Any], ctx: Context, out: Mapped) -> str:
    candidates: list[object] = [obj(payload.get("account")).get("id")]
    conv = obj(payload.get("conversation")) or payload
    messages = conv.get("messages")
    if isinstance(messages, list):
        candidates.extend(obj(message).get("account_id") for message in messages)
    changes = payload.get("changed_attributes")
    if isinstance(changes, list):
        for change in changes:
            candidates.append(obj(obj(change).get("account_id")).get("current_value"))
    candidates.append(obj(obj(payload.get("contact")).get("account")).get("id"))
    candidates.append(ctx.account)
    inbox = _inbox_of(payload)
    for value in candidates:
        if value is not None and value != "":
            account = ident(value, "account id")
            if inbox is not None:
                out.learned[f"{PLATFORM}:inbox:{inbox}:account"] = account
            return account
    # No account named: count the arrival under an assumed one instead of refusing it (a 4xx is
    # not retried by Chatwoot, so the conversation would be lost).
    if ctx.config.chatwoot_default_account:
        out.assumed.append(("account", "setting"))
        return ctx.config.chatwoot_default_account
    seen = ctx.recall.get(f"{PLATFORM}:inbox:{inbox}:account") if inbox is not None else None
    if seen is not None:
        out.assumed.append(("account", "inbox"))
        return seen
    out.assumed.append(("account", "default"))
    return DEFAULT_ACCOUNT


def _changes(payload: dict[str, Any]) -> dict[str, tuple[object, object]]:
    """changed_attributes ([{attr: {previous_value, current_value}}] or one such object) as a dict."""
    raw = payload.get("changed_attributes")
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    out: dict[str, tuple[object, object]] = {}
    for item in items:
        for name, change in obj(item).items():
            change = obj(change)
            out[name] = (change.get("previous_value"), change.get("current_value"))
    return out


class _Conv:
    """The ids and routing of the conversation a delivery is about."""

    def __init__(
        self, conv: dict[str, Any], account: str, ctx: Context, out: Mapped, inbox: dict[str, Any] | None = None
    ) -> None:
        self.account = account
        self.ctx = ctx
        self.out = out
        display_id = conv.get("id", conv.get("display_id"))
        self.id = scoped(PLATFORM, account, ident(display_id, "conversation id"))
        inbox = inbox or {}
        self.inbox = opt_ident(conv.get("inbox_id", inbox.get("id")), "inbox id")
        self.inbox_name = self.name_of("inbox", self.inbox, inbox.get("name"))
        team = obj(obj(conv.get("meta")).get("team"))
        self.team = opt_ident(team.get("id"), "team id")
        self.team_name = self.name_of("team", self.team, team.get("name"))
        self.ref = self.queue_of(self.team, self.team_name)
        self.queue = self.ref.queue
        shop_parts = (account, self.inbox) if self.inbox else (account,)
        self.base = Base(ctx.config.tenant_for(PLATFORM, account), scoped(PLATFORM, *shop_parts), PLATFORM)

    def name_of(self, kind: str, ident_: str | None, sent: object) -> str | None:
        """The name the delivery gives (remembered for deliveries without it), else the remembered one."""
        if ident_ is None:
            return None
        key = f"{PLATFORM}:{self.account}:{kind}:{ident_}:name"
        name = clean_name(sent)
        if name is not None:
            self.out.learned[key] = name
            return name
        return self.ctx.recall.get(key)

    def queue_of(self, team: str | None, team_name: str | None) -> QueueRef:
        ref = self.ctx.config.resolve_queue(
            PLATFORM, self.account, ("team", team, team_name), ("inbox", self.inbox, self.inbox_name)
        )
        self.out.queues_seen.append((f"{PLATFORM}:{self.account}", ref.queue))
        return ref

    def agent(self, user_id: object) -> str:
        return scoped(PLATFORM, self.account, "agent", ident(user_id, "agent id"))

    def event_id(self, *parts: str) -> str:
        return scoped(self.id, *parts)


def _channel(value: object) -> str | None:
    name = clean_name(value)
    return name.removeprefix("Channel::").lower() if name else None


def _conversation_created(payload: dict[str, Any], ctx: Context, out: Mapped) -> None:
    conv = _Conv(payload, _account(payload, ctx, out), ctx, out)
    ts = ts_or(payload.get("created_at"), "created_at", ctx.received_ms)
    contact = opt_ident(obj(obj(payload.get("meta")).get("sender")).get("id"), "contact id")
    out.events.append(
        conv.base.event(
            "conversation.opened", conv.event_id("opened"), ts,
            conversation_id=conv.id, queue=conv.queue, queue_source_id=conv.ref.source_id,
            customer_id=scoped(PLATFORM, conv.account, "contact", contact) if contact else None,
            channel=_channel(payload.get("channel")),
        )
    )
    assignee = obj(obj(payload.get("meta")).get("assignee")).get("id")
    if assignee is not None:
        agent = conv.agent(assignee)
        out.events.append(
            conv.base.event(
                "conversation.assigned", conv.event_id("assigned", agent.rsplit(":", 1)[-1], str(ts)), ts,
                conversation_id=conv.id, agent_id=agent, queue=conv.queue,
            )
        )


def _closed(conv: _Conv, ts: int) -> dict[str, Any]:
    # Same event_id from conversation_status_changed and conversation_updated of one change.
    return conv.base.event(
        "conversation.closed", conv.event_id("closed", str(ts)), ts, conversation_id=conv.id, reason="resolved"
    )


def _updated_ts(payload: dict[str, Any], ctx: Context) -> int:
    return ts_or(payload.get("updated_at"), "updated_at", ctx.received_ms)


def _conversation_status_changed(payload: dict[str, Any], ctx: Context, out: Mapped) -> None:
    if payload.get("status") != "resolved":
        out.ignored.append("conversation_status_changed")  # handoffs are read from conversation_updated
        return
    conv = _Conv(payload, _account(payload, ctx, out), ctx, out)
    out.events.append(_closed(conv, _updated_ts(payload, ctx)))


def _conversation_updated(payload: dict[str, Any], ctx: Context, out: Mapped) -> None:
    changes = _changes(payload)
    status = changes.get("status")
    assignee = changes.get("assignee_id")
    team = changes.get("team_id")
    if not (status or assignee or team):
        out.ignored.append("conversation_updated")
        return
    conv = _Conv(payload, _account(payload, ctx, out), ctx, out)
    ts = _updated_ts(payload, ctx)
    before = len(out.events)
    if team is not None:
        old_team, new_team = opt_ident(team[0], "team id"), opt_ident(team[1], "team id")
        # The payload names only the team it is in now (meta.team); the old one by id, or as remembered.
        old_ref = conv.queue_of(old_team, conv.name_of("team", old_team, None))
        new_name = conv.team_name if new_team == conv.team else conv.name_of("team", new_team, None)
        new_ref = conv.queue_of(new_team, new_name)
        if new_team != old_team and new_ref.queue != old_ref.queue:
            out.events.append(
                conv.base.event(
                    "conversation.transferred", conv.event_id("transferred", new_team or "-", str(ts)), ts,
                    conversation_id=conv.id, to_queue=new_ref.queue, to_queue_source_id=new_ref.source_id,
                    reason="team_changed",
                )
            )
    if status is not None:
        previous, current = status
        if previous == "pending" and current == "open":
            out.events.append(
                conv.base.event("conversation.handoff", conv.event_id("handoff", str(ts)), ts, conversation_id=conv.id)
            )
        elif current == "resolved" and previous != "resolved":
            out.events.append(_closed(conv, ts))
    if assignee is not None and assignee[1] is not None:
        agent = conv.agent(assignee[1])
        out.events.append(
            conv.base.event(
                "conversation.assigned", conv.event_id("assigned", agent.rsplit(":", 1)[-1], str(ts)), ts,
                conversation_id=conv.id, agent_id=agent,
            )
        )
    if len(out.events) == before:
        out.ignored.append("conversation_updated")


def _message_conv(payload: dict[str, Any], ctx: Context, out: Mapped) -> _Conv:
    conversation = obj(payload.get("conversation"))
    if not conversation:
        raise AdapterError("message event without its conversation")
    return _Conv(conversation, _account(payload, ctx, out), ctx, out, inbox=obj(payload.get("inbox")))


def _message_created(payload: dict[str, Any], ctx: Context, out: Mapped) -> None:
    if payload.get("private") is True:
        out.ignored.append("message_created")  # a private note: not a reply to the buyer
        return
    kind = payload.get("message_type")
    sender_obj = obj(payload.get("sender"))
    sender_type = sender_obj.get("type")
    if kind in _INCOMING:
        sender = "customer"
    elif kind in _OUTGOING:
        sender = "agent" if sender_type == "user" else "bot"  # agent_bot, captain_assistant, none
    else:  # template (surveys, forms) and activity: written by Chatwoot itself
        out.ignored.append("message_created")
        return
    conv = _message_conv(payload, ctx, out)
    message_id = ident(payload.get("id"), "message id")
    ts = ts_or(payload.get("created_at"), "created_at", ctx.received_ms)
    fields: dict[str, Any] = {"conversation_id": conv.id, "sender": sender, "chars": text_len(payload.get("content"))}
    if sender == "customer":
        fields["queue"] = conv.queue
        fields["queue_source_id"] = conv.ref.source_id
        contact = opt_ident(sender_obj.get("id"), "contact id")
        fields["customer_id"] = scoped(PLATFORM, conv.account, "contact", contact) if contact else None
    elif sender == "agent":
        fields["agent_id"] = conv.agent(sender_obj.get("id"))
    out.events.append(conv.base.event("message", scoped(PLATFORM, conv.account, "msg", message_id), ts, **fields))


def _message_updated(payload: dict[str, Any], ctx: Context, out: Mapped) -> None:
    """Only a submitted CSAT survey (content_type input_csat) is used; other edits are ignored."""
    response = obj(obj(obj(payload.get("content_attributes")).get("submitted_values")).get("csat_survey_response"))
    rating = response.get("rating")
    if payload.get("content_type") != "input_csat" or rating is None:
        out.ignored.append("message_updated")
        return
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise AdapterError(f"csat_survey_response.rating must be an integer 1..5, got {str(rating)[:20]!r}")
    conv = _message_conv(payload, ctx, out)
    message_id = ident(payload.get("id"), "message id")
    # The payload has no time of the rating: the delivery's (first) arrival stands for it.
    out.events.append(
        conv.base.event(
            "csat.rated", scoped(PLATFORM, conv.account, "msg", message_id, "csat"), ctx.received_ms,
            conversation_id=conv.id, score=rating,
        )
    )


_HANDLERS: Final = {
    "conversation_created": _conversation_created,
    "conversation_status_changed": _conversation_status_changed,
    "conversation_updated": _conversation_updated,
    "message_created": _message_created,
    "message_updated": _message_updated,
}


def adapt(payload: object, ctx: Context) -> Mapped:
    delivery = delivery_object(payload, "Chatwoot")
    out = Mapped()
    found = dispatch(
        delivery, "event", _HANDLERS, out, known=EVENTS, unnamed="a Chatwoot delivery names its event in `event`"
    )
    if found is not None:
        _name, handler = found
        handler(delivery, ctx, out)
    return out
