"""Idle agents go (issue 16, item 1): an agent whose last status or chat change is older than AGENT_RETENTION_S,
who is offline and holds no chat, is deleted from the agent table (a tombstone in its changelog), its own view is
tombstoned and it leaves every count, so it leaves the API, the wallboard and /metrics. An agent still online (or
away, or busy) or holding a chat stays however old its last event. One that comes back starts fresh."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.agents import agent_view
from services.core.events import state_key
from services.core.scope import Scope
from services.scorer.inprocess import InProcessScorer
from services.scorer.metrics import ViewsCollector
from services.scorer.settings import ScorerSettings
from services.scorer.stages import AgentStage

T = 1_800_000_000_000
H = 3_600_000
DAY = 24 * H
SHOP = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}
A1_VIEW = Scope("acme", "acme-jd", "jd", "@agent:a1")
HOLDER_VIEW = Scope("acme", "acme-jd", "jd", "@agent:holder")
QUEUE_VIEW = Scope("acme", "acme-jd", "jd", "presales")


def ev(n: str, etype: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {**SHOP, "event_id": n, "type": etype, "ts": ts, **extra}


def status(n: str, ts: int, agent: str, st: str) -> dict[str, Any]:
    return ev(n, "agent.status", ts, agent_id=agent, status=st, capacity=2, queues=["presales"])


def scorer() -> InProcessScorer:
    return InProcessScorer(event_clock=False)  # now is the wall clock handed to tick (a quiet floor's clock)


def agent_keys(s: InProcessScorer) -> set[bytes]:
    return set(s.agent_table)


def test_an_agent_offline_past_the_retention_leaves_the_table_and_every_view() -> None:
    s = scorer()
    s.feed([status("s1", T, "a1", "online"), status("s2", T + 10_000, "a1", "offline")])
    views = s.tick(T + 20_000)
    assert views[A1_VIEW]["agent"]["status"] == "offline"
    assert views[QUEUE_VIEW]["live"]["agents_online"] == 0  # known, offline: 0, not null
    s.tick(T + DAY)  # a day after the first status, not after the last one: kept
    assert agent_keys(s) == {state_key("acme", "a1").encode()} and A1_VIEW in s.queues.latest
    s.tick(T + 10_000 + DAY + AgentStage.SWEEP_EVERY_MS)  # idle agents are looked for once a minute
    assert agent_keys(s) == set()
    assert A1_VIEW in s.tombstoned and A1_VIEW not in s.queues.latest
    # The queue had nothing but the agent: its views go too (views of scopes that went are tombstoned).
    assert QUEUE_VIEW in s.tombstoned
    assert s.metrics.agents_evicted._value.get() == 1
    assert not any(b"@agent:a1" in k for k in s.partials_table)  # the agent's partials left the compacted topic
    assert "@agent:a1" not in ViewsCollector(s.queues.current_views).render().decode()  # so /metrics


def test_an_agent_online_away_or_holding_a_chat_stays_however_old() -> None:
    s = scorer()
    s.feed([
        status("s1", T, "on", "online"),
        status("s2", T, "away", "away"),
        status("s3", T, "busy", "busy"),
        status("s4", T, "holder", "online"),
        ev("c1", "conversation.opened", T + 1000, conversation_id="c1", queue="presales"),
        ev("c2", "conversation.assigned", T + 2000, conversation_id="c1", agent_id="holder"),
        status("s5", T + 3000, "holder", "offline"),  # logged off with the chat still assigned
        status("s6", T, "gone", "offline"),
    ])
    s.tick(T + 5000)
    s.tick(T + 7 * DAY)
    kept = {k.decode().split("\x1f")[1] for k in agent_keys(s)}
    assert kept == {"on", "away", "busy", "holder"}
    assert Scope(**SHOP, queue="@agent:gone") in s.tombstoned
    holder = agent_view(s.queues.latest[HOLDER_VIEW])
    assert (holder["status"], holder["active_chats"]) == ("offline", 1)
    # Its chat closes: now it is offline and holds nothing, but its last event is new; it goes a day later.
    s.feed([ev("c3", "conversation.closed", T + 7 * DAY, conversation_id="c1", reason="resolved")])
    s.tick(T + 7 * DAY + 1000)
    assert "holder" in {k.decode().split("\x1f")[1] for k in agent_keys(s)}
    s.tick(T + 8 * DAY + 60_000)
    assert "holder" not in {k.decode().split("\x1f")[1] for k in agent_keys(s)}
    assert HOLDER_VIEW in s.tombstoned


def test_an_agent_that_comes_back_starts_fresh() -> None:
    s = scorer()
    s.feed([status("s1", T, "a1", "online"), status("s2", T + 10_000, "a1", "offline")])
    s.tick(T + 20_000)
    back = T + 2 * DAY
    s.tick(back - 60_000)
    assert agent_keys(s) == set()
    s.feed([status("s3", back, "a1", "away")])
    views = s.tick(back + 30_000)
    a = agent_view(views[A1_VIEW])
    assert (a["status"], a["active_chats"]) == ("away", 0)
    # The time before it came back is in no status (its old history went with it).
    assert a["windows"]["1h"]["status_seconds"] == {"online": 0.0, "busy": 0.0, "away": 30.0, "offline": 0.0}
    assert views[QUEUE_VIEW]["live"]["agents_online"] == 1 and views[QUEUE_VIEW]["live"]["agents_away"] == 1


def test_the_deletion_is_in_the_table_so_a_rebuilt_stage_does_not_bring_it_back() -> None:
    s = scorer()
    s.feed([status("s1", T, "a1", "offline"), status("s2", T, "a2", "online")])
    s.tick(T + 1000)
    s.tick(T + DAY + 60_000)
    # A worker taking the partitions over (or restarting) rebuilds from the table, i.e. from its changelog.
    again = AgentStage(s.agent_table, s.metrics, queue_partitions=s.queue_partitions)
    again.rebuild(set(range(s.event_partitions)))
    published = {key for _p, agents in again.dirty_agents.items() for key in agents}
    assert published == {state_key("acme", "a2")}
    out = again.tick()
    assert not any(b"@agent:a1" in o.key for o in out)


def test_agent_retention_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_ID_SALT", "a-salt-for-the-tests-only")
    assert ScorerSettings().agent_retention_ms == DAY  # documented default: 24 h
    monkeypatch.setenv("AGENT_RETENTION_S", "7200")
    assert ScorerSettings().agent_retention_ms == 2 * H
    monkeypatch.setenv("AGENT_RETENTION_S", "600")  # shorter than the longest window plus grace
    with pytest.raises(SystemExit, match="AGENT_RETENTION_S"):
        ScorerSettings()
