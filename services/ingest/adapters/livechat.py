"""LiveChat (Webhooks v3.6) -> chat events (see README.md in this folder for the full table).

A LiveChat *chat* lives on across visits; each visit is a *thread*. A consultation of the
contract is a thread: conversation_id = `livechat:{organization}:{chat}:{thread}`.

Author roles: `users[].type` where the delivery lists users (incoming_chat). `incoming_event`
lists none, so there the id tells: LiveChat agent ids are their login e-mails, bot agents have
32-hex ids, customers UUIDs; LIVECHAT_BOT_AGENT_IDS names bots explicitly.

Queues: LiveChat names a chat's group only by id (`access.group_ids`; its name comes with
`group_created`/`group_updated` only, which a restart would forget and so flip a floor's tiles),
so the queue is `group-<id>` unless ADAPTER_QUEUE_MAP names it; `queue_source_id` keeps
`livechat:{organization}:group:{id}`. An agent's queues (LiveChat's availability webhook names
no groups) are ADAPTER_AGENT_QUEUES, else the mapped ones, else the groups seen so far.

Most actions other than incoming_chat/incoming_event carry neither a time nor an id. Their ts
is the delivery's arrival (`ctx.received_ms`, which the webhook layer keeps the same for an
identical redelivery), and their event_id hashes the payload plus that time: an identical
retry maps to the same ids, while the same change made again later (an agent toggling back to
"accepting chats") is a new event.
"""

from __future__ import annotations

import re
from typing import Any, Final

from .common import (
    AdapterError,
    Base,
    Context,
    Mapped,
    QueueRef,
    canonical_hash,
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

PLATFORM: Final = "livechat"
EVENTS: Final = frozenset(
    {
        "incoming_chat", "incoming_event", "event_updated", "chat_deactivated", "chat_transferred",
        "user_added_to_chat", "user_removed_from_chat", "routing_status_set", "thread_tagged",
        "thread_untagged", "events_marked_as_seen", "chat_access_granted", "chat_access_revoked",
        "chat_properties_updated", "chat_properties_deleted", "thread_properties_updated",
        "thread_properties_deleted", "event_properties_updated", "event_properties_deleted",
        "incoming_rich_message_postback", "incoming_customer", "customer_session_fields_updated",
        "agent_created", "agent_approved", "agent_updated", "agent_suspended", "agent_unsuspended",
        "agent_deleted", "bot_created", "bot_updated", "bot_deleted", "group_created", "group_updated",
        "group_deleted", "tag_created", "tag_updated", "tag_deleted",
    }
)
_MESSAGE_TYPES: Final = frozenset({"message", "file", "rich_message"})
_BOT_ID: Final = re.compile(r"^[0-9a-f]{32}$")
_ROUTING: Final = {"accepting_chats": "online", "not_accepting_chats": "busy", "offline": "offline"}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


class _Org:
    def __init__(self, envelope: dict[str, Any], ctx: Context, out: Mapped) -> None:
        org = envelope.get("organization_id", envelope.get("license_id"))
        self.id = ident(org, "organization_id")
        self.ctx = ctx
        self.out = out
        self.base = Base(ctx.config.tenant_for(PLATFORM, self.id), scoped(PLATFORM, self.id), PLATFORM)

    def conv(self, chat_id: object, thread_id: object) -> str:
        return scoped(PLATFORM, self.id, ident(chat_id, "chat_id"), ident(thread_id, "thread_id"))

    def agent(self, agent_id: str) -> str:
        return scoped(PLATFORM, self.id, "agent", agent_id)

    def role(self, author: str, users: dict[str, str]) -> str:
        if author in self.ctx.config.livechat_bot_agents:
            return "bot"
        kind = users.get(author)
        if kind == "customer":
            return "customer"
        if kind == "agent" or "@" in author:
            return "bot" if _BOT_ID.match(author) else "agent"
        return "bot" if _BOT_ID.match(author) else "customer"

    def queue(self, *group_lists: object) -> QueueRef | None:
        for groups in group_lists:
            if isinstance(groups, list) and groups:
                ref = self.ctx.config.resolve_queue(PLATFORM, self.id, ("group", groups[0], None))
                self.out.queues_seen.append((f"{PLATFORM}:{self.id}", ref.queue))
                return ref
        return None


def _message(
    org: _Org, conv: str, event: dict[str, Any], users: dict[str, str], queue: QueueRef | None
) -> dict[str, Any] | None:
    if event.get("type") not in _MESSAGE_TYPES or event.get("visibility") == "agents":
        return None  # system messages, forms, internal whispers
    event_id = ident(event.get("id"), "event id")
    author = ident(event.get("author_id"), "author_id")
    sender = org.role(author, users)
    ts = ts_or(event.get("created_at"), "event created_at", org.ctx.received_ms)
    fields: dict[str, Any] = {"conversation_id": conv, "sender": sender, "chars": text_len(event.get("text"))}
    if sender == "agent":
        fields["agent_id"] = org.agent(author)
    elif sender == "customer":
        fields["customer_id"] = scoped(PLATFORM, org.id, "customer", author)
        if queue is not None:
            fields["queue"], fields["queue_source_id"] = queue
    return org.base.event("message", scoped(conv, "ev", event_id), ts, **fields)


def _incoming_chat(org: _Org, p: dict[str, Any], out: Mapped) -> None:
    chat = obj(p.get("chat"))
    thread = obj(chat.get("thread"))
    if not thread and isinstance(chat.get("threads"), list) and chat["threads"]:
        thread = obj(chat["threads"][0])
    conv = org.conv(chat.get("id"), thread.get("id"))
    ts = ts_or(thread.get("created_at"), "thread created_at", org.ctx.received_ms)
    users: dict[str, str] = {}
    for raw_user in _list(chat.get("users")):
        user = obj(raw_user)
        if isinstance(user.get("type"), str) and user.get("id") is not None:
            users[ident(user.get("id"), "user id")] = user["type"]
    queue = org.queue(
        obj(thread.get("access")).get("group_ids"), obj(chat.get("access")).get("group_ids")
    ) or org.ctx.config.resolve_queue(PLATFORM, org.id)
    customer = next((u for u, kind in users.items() if kind == "customer"), None)
    out.events.append(
        org.base.event(
            "conversation.opened", scoped(conv, "opened"), ts, conversation_id=conv, queue=queue.queue,
            queue_source_id=queue.source_id,
            customer_id=scoped(PLATFORM, org.id, "customer", customer) if customer else None,
        )
    )
    agent = next((u for u, kind in users.items() if kind == "agent" and org.role(u, users) == "agent"), None)
    if agent is not None:
        out.events.append(
            org.base.event(
                "conversation.assigned", scoped(conv, "assigned", agent), ts, conversation_id=conv,
                agent_id=org.agent(agent),
            )
        )
    for event in _list(thread.get("events")):
        mapped = _message(org, conv, obj(event), users, queue)
        if mapped is not None:
            out.events.append(mapped)


def _incoming_event(org: _Org, p: dict[str, Any], out: Mapped) -> None:
    conv = org.conv(p.get("chat_id"), p.get("thread_id"))
    mapped = _message(org, conv, obj(p.get("event")), {}, None)
    if mapped is None:
        out.ignored.append("incoming_event")
    else:
        out.events.append(mapped)


def _chat_deactivated(org: _Org, p: dict[str, Any], out: Mapped) -> None:
    conv = org.conv(p.get("chat_id"), p.get("thread_id"))
    # LiveChat says who closed the thread (user_id), not why: reported as resolved.
    out.events.append(
        org.base.event(
            "conversation.closed", scoped(conv, "closed"), org.ctx.received_ms, conversation_id=conv, reason="resolved"
        )
    )


def _chat_transferred(org: _Org, p: dict[str, Any], out: Mapped) -> None:
    conv = org.conv(p.get("chat_id"), p.get("thread_id"))
    ts = org.ctx.received_ms
    key = canonical_hash(p)
    target = obj(p.get("transferred_to"))
    agents = target.get("agent_ids") if isinstance(target.get("agent_ids"), list) else []
    to_agent = opt_ident(agents[0], "transferred_to.agent_ids[0]") if agents else None
    to_queue = org.queue(target.get("group_ids"))
    requester = opt_ident(p.get("requester_id"), "requester_id")
    before = len(out.events)
    if requester is not None and org.role(requester, {}) == "bot":
        out.events.append(
            org.base.event("conversation.handoff", scoped(conv, "handoff", key, str(ts)), ts, conversation_id=conv)
        )
    if to_queue is not None:
        out.events.append(
            org.base.event(
                "conversation.transferred", scoped(conv, "transferred", key, str(ts)), ts, conversation_id=conv,
                to_queue=to_queue.queue, to_queue_source_id=to_queue.source_id,
                to_agent_id=org.agent(to_agent) if to_agent else None,
                reason=clean_name(p.get("reason")),
            )
        )
    elif to_agent is not None and org.role(to_agent, {}) == "agent":
        out.events.append(
            org.base.event(
                "conversation.assigned", scoped(conv, "assigned", key, str(ts)), ts, conversation_id=conv,
                agent_id=org.agent(to_agent),
            )
        )
    if len(out.events) == before:
        out.ignored.append("chat_transferred")


def _user_added_to_chat(org: _Org, p: dict[str, Any], out: Mapped) -> None:
    user = obj(p.get("user"))
    user_id = opt_ident(user.get("id"), "user id")
    kind = user.get("type")
    if user_id is None or kind not in ("agent", None) or user.get("visibility") == "agents":
        out.ignored.append("user_added_to_chat")  # customers, supervisors joining in private
        return
    if org.role(user_id, {user_id: "agent"} if kind == "agent" else {}) != "agent":
        out.ignored.append("user_added_to_chat")  # a bot
        return
    conv = org.conv(p.get("chat_id"), p.get("thread_id"))
    ts = org.ctx.received_ms
    out.events.append(
        org.base.event(
            "conversation.assigned", scoped(conv, "assigned", canonical_hash(p), str(ts)), ts,
            conversation_id=conv, agent_id=org.agent(user_id),
        )
    )


def _routing_status_set(org: _Org, p: dict[str, Any], out: Mapped) -> None:
    agent = ident(p.get("agent_id"), "agent_id")
    raw = p.get("status")
    status = _ROUTING.get(raw.strip().lower().replace(" ", "_")) if isinstance(raw, str) else None
    if status is None or org.role(agent, {agent: "agent"}) != "agent":
        out.ignored.append("routing_status_set")  # an unknown status, or a bot's
        return
    ts = org.ctx.received_ms
    agent_id = org.agent(agent)
    out.events.append(
        org.base.event(
            "agent.status", scoped(PLATFORM, org.id, "status", agent, status, str(ts)), ts, agent_id=agent_id,
            status=status, capacity=org.ctx.config.agent_capacity,
            queues=org.ctx.config.queues_of_agent(
                PLATFORM, org.id, agent, agent_id, org.ctx.recall.queues(f"{PLATFORM}:{org.id}")
            ),
        )
    )


_HANDLERS: Final = {
    "incoming_chat": _incoming_chat,
    "incoming_event": _incoming_event,
    "chat_deactivated": _chat_deactivated,
    "chat_transferred": _chat_transferred,
    "user_added_to_chat": _user_added_to_chat,
    "routing_status_set": _routing_status_set,
}


def adapt(payload: object, ctx: Context) -> Mapped:
    delivery = delivery_object(payload, "LiveChat")
    out = Mapped()
    found = dispatch(
        delivery, "action", _HANDLERS, out, known=EVENTS, unnamed="a LiveChat delivery names its action in `action`"
    )
    if found is None:
        return out
    action, handler = found
    body = delivery.get("payload")
    if not isinstance(body, dict):
        raise AdapterError(f"{action}: `payload` must be a JSON object")
    handler(_Org(delivery, ctx, out), body, out)
    return out
