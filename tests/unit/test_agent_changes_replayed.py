"""An agent's chat slots after a crash: the agent stage reads again every change after its committed offset, onto
a state that may already hold them (its table's writes are acknowledged before the offsets covering them are
committed, so the table can be ahead of them). Reading any tail of its changes again must change nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.core.agents import AgentState
from tests.unit.test_scorer_properties import PROPERTY

Change = tuple[str, bool, int]  # (conversation, takes the slot / leaves it, ts)


@st.composite
def slot_changes(draw: st.DrawFn) -> list[Change]:
    """What stage 1 sends for in-order events: per conversation, takes and leaves in turn at non-decreasing
    times (a conversation may take the slot again after leaving it, as a transfer back does); conversations
    interleaved at random, as partitions interleave them."""
    per_conversation: list[list[Change]] = []
    for c in range(draw(st.integers(1, 4))):
        ts, out = 1_000, []
        for i in range(draw(st.integers(1, 6))):
            ts += draw(st.integers(1, 50))  # a later time: the last event of the conversation moved on
            out.append((f"c{c}", i % 2 == 0, ts))
        per_conversation.append(out)
    merged: list[Change] = []
    while any(per_conversation):
        pick = draw(st.sampled_from([q for q in per_conversation if q]))
        merged.append(pick.pop(0))
    return merged


def applied(changes: list[Change], agent: AgentState | None = None) -> AgentState:
    agent = agent or AgentState()
    for conversation, active, ts in changes:
        agent.set_active(conversation, active, ts)
    return agent


@PROPERTY
@given(slot_changes(), st.data())
def test_reading_any_tail_of_the_changes_again_changes_nothing(changes: list[Change], data: st.DataObject) -> None:
    once = applied(changes)
    start = data.draw(st.integers(0, len(changes)))
    again = applied(changes[start:], applied(changes))
    assert again.chats == once.chats
    assert again.history() == once.history()


def test_a_closed_chat_read_again_is_not_held_twice() -> None:
    """Taken at 10, left at 20, both read again: one span, held by nobody, and never two chats at once."""
    agent = applied([("c", True, 10), ("c", False, 20)])
    assert applied([("c", True, 10), ("c", False, 20)], agent).chats == {"c": [[10, 20]]}
    assert max(active for _ts, _status, active in agent.history()) == 1


def test_an_old_leave_read_again_does_not_end_the_chat_taken_since() -> None:
    agent = applied([("c", True, 10), ("c", False, 20), ("c", True, 30)])
    assert not agent.set_active("c", False, 20)
    assert agent.active == {"c"}
