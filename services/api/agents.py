"""The per-agent view (Chitu style): what each agent handled, how fast, how loaded, how present."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path

from services.core.figures import QueueView
from services.core.privacy import shown_agent_id
from services.core.scope import AGENT_PREFIX, is_agent_scope

from .params import Filter
from .views import ViewStore


def agent_view(view: QueueView) -> dict[str, Any]:
    """An agent's figures from the scorer's view of its @agent scope."""
    scope, agent = view["scope"], view.get("agent", {})
    windows = {}
    for name, w in view["windows"].items():
        windows[name] = {
            "chats_handled": w["closed"],  # conversations closed while assigned to the agent (接待)
            "first_responses": w["frt"]["count"],
            "frt_mean_s": w["frt"]["mean_s"],
            "reply_mean_s": w["reply"]["mean_s"],
            "replies": w["reply"]["count"],
            "slow_replies": w["reply"]["slow"],
            "aht_s": w["aht_s"],
            "messages_sent": w["messages"]["agent"],
            "answer_question_ratio": w["answer_question_ratio"],
            "platform_rule": w.get("platform_rule"),
            "max_concurrent": w.get("max_concurrent"),
            "status_seconds": w.get("status_seconds"),
        }
    return {
        "agent_id": shown_agent_id(view["queue"][len(AGENT_PREFIX):]),  # an e-mail address is shown hashed
        "tenant": scope["tenant"], "shop_id": scope["shop_id"], "platform": scope["platform"],
        "as_of": view["as_of"],
        "status": agent.get("status"),
        "capacity": agent.get("capacity"),
        "queues": agent.get("queues"),
        "active_chats": agent.get("active_chats"),
        "windows": windows,
    }


def mount_agents(app: FastAPI, views: ViewStore) -> None:
    def agents(tenant: str | None, shop_id: str | None, platform: str | None) -> list[dict[str, Any]]:
        out = [
            agent_view(v) for key, v in views.views.items()
            if is_agent_scope(key.queue) and tenant in (None, key.tenant) and shop_id in (None, key.shop_id)
            and platform in (None, key.platform)
        ]
        out.sort(key=lambda a: (a["shop_id"], a["agent_id"]))
        return out

    @app.get("/v1/agents")
    async def list_agents(tenant: Filter = None, shop_id: Filter = None, platform: Filter = None) -> dict[str, Any]:
        """Every agent's view: status, chats now, and per window handled chats, FRT, reply time, load."""
        return {"agents": agents(tenant, shop_id, platform)}

    @app.get("/v1/agents/{agent_id}")
    async def get_agent(agent_id: Annotated[str, Path(max_length=128)], tenant: Filter = None) -> dict[str, Any]:
        """One agent's view. Agents are per tenant: when two tenants have an agent of that id, `tenant` says
        whose (409 without it)."""
        found = [
            v for key, v in views.views.items()
            # By the id as shown (agent-<hash> for an address), or by the id itself.
            if is_agent_scope(key.queue) and tenant in (None, key.tenant)
            and agent_id in (key.queue[len(AGENT_PREFIX):], shown_agent_id(key.queue[len(AGENT_PREFIX):]))
        ]
        if not found:
            raise HTTPException(404, f"no figures for agent {agent_id!r} yet")
        tenants = sorted({v["scope"]["tenant"] for v in found})
        if len(tenants) > 1:
            raise HTTPException(409, f"agent {agent_id!r} works for {len(tenants)} tenants: give ?tenant=")
        return agent_view(found[0])
