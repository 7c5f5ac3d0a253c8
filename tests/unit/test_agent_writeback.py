"""The agent stage keeps its agents decoded and writes each changed one to the table once per flush (issue 11,
item 2: no whole-history re-encode per agent change). What a flush wrote is all a worker taking the partitions
over rebuilds from, so after every flush the table must say what the live stage knows."""

from __future__ import annotations

from typing import Any

from services.core.events import state_key
from services.scorer.inprocess import InProcessScorer
from services.scorer.stages import AgentStage

T = 1_800_000_000_000
SHOP = {"tenant": "acme", "shop_id": "acme-jd", "platform": "jd"}


class CountingTable(dict[bytes, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


def ev(n: str, etype: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {**SHOP, "event_id": n, "type": etype, "ts": ts, **extra}


def busy_agent_events(chats: int) -> list[dict[str, Any]]:
    """Agent a1 comes online and takes `chats` conversations one after another; a2 only comes online."""
    out = [ev("s1", "agent.status", T, agent_id="a1", status="online", capacity=3, queues=["presales"]),
           ev("s2", "agent.status", T, agent_id="a2", status="online", capacity=3, queues=["presales"])]
    for i in range(chats):
        t = T + 1000 + i * 10_000
        out += [
            ev(f"c{i}-o", "conversation.opened", t, conversation_id=f"c{i}", queue="presales"),
            ev(f"c{i}-a", "conversation.assigned", t + 1000, conversation_id=f"c{i}", agent_id="a1"),
            ev(f"c{i}-x", "conversation.closed", t + 5000, conversation_id=f"c{i}", reason="resolved"),
        ]
    return out


def rebuilt(s: InProcessScorer) -> AgentStage:
    again = AgentStage(s.agent_table, s.metrics, queue_partitions=s.queue_partitions)
    again.rebuild(set(range(s.event_partitions)))
    return again


def test_many_changes_to_one_agent_between_flushes_write_it_once() -> None:
    s = InProcessScorer()
    s.agent_table = s.agents.table = CountingTable()
    s.feed(busy_agent_events(20))  # one batch: 41 changes to a1 (its status, 20 chats taken and left), one to a2
    writes = s.agent_table.writes  # type: ignore[attr-defined]
    assert sorted(writes) == sorted([state_key("acme", "a1").encode(), state_key("acme", "a2").encode()])


def test_after_each_flush_the_table_rebuilds_the_stage_it_was_written_from() -> None:
    s = InProcessScorer()
    events = busy_agent_events(12)
    for i in range(0, len(events), 5):  # batches of five: a flush after each
        s.feed(events[i:i + 5])
        again = rebuilt(s)
        live = {p: {k: a.to_json() for k, a in agents.items()} for p, agents in s.agents.states.items() if agents}
        assert {p: {k: a.to_json() for k, a in agents.items()} for p, agents in again.states.items() if agents} == live
        assert {p: part.live for p, part in again.parts.items() if part.live} == {
            p: part.live for p, part in s.agents.parts.items() if part.live
        }


def test_nothing_is_written_before_the_flush() -> None:
    s = InProcessScorer()
    stage = s.agents
    key = state_key("acme", "a1").encode()
    change = b'{"k":"assign","c":"acme\\u001fc1","active":true,"ts":1800000000000}'
    stage.on_event(key, change, 0)
    assert key not in s.agent_table and stage.unwritten[0] == {key.decode()}
    stage.flush(0)
    assert key in s.agent_table and not stage.unwritten[0]
