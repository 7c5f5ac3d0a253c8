"""Stage 1's conversation store alone: what is written back is what is read again, decoded or not."""

from __future__ import annotations

from services.core.conversation import Conversation, state_to_compact
from services.core.wire import decode_conversation_record
from services.scorer.conversation_store import ConversationStore, Table


def conversation(last_ts: int, queue: str = "presales") -> Conversation:
    conv = Conversation("acme", "acme-jd", "jd", last_event_ts=last_ts)
    conv.state.queue = queue
    return conv


def test_a_change_is_read_back_before_and_after_its_write_back() -> None:
    table: Table = {}
    store = ConversationStore(table, cache_max=10, cache_idle_ms=60_000)
    store.own(0)
    store.put(b"c1", 0, conversation(1000))
    assert table == {}  # written once per batch, not per event
    assert store.get(b"c1", 0)[0] is not None
    assert store.write_back(0) and not store.write_back(0)  # nothing left to write
    store.release({0})
    store.own(0)  # nothing decoded any more: read from the table's bytes
    conv, tomb = store.get(b"c1", 0)
    assert tomb is None and conv is not None and conv.to_json() == conversation(1000).to_json()
    assert store.get(b"nobody", 0) == (None, None)


def test_the_cache_keeps_the_latest_touched_and_drops_the_idle() -> None:
    store = ConversationStore({}, cache_max=2, cache_idle_ms=60_000)
    store.own(0)
    for i, ts in enumerate([1000, 2000, 70_000]):
        store.put(f"c{i}".encode(), 0, conversation(ts))
    assert list(store.cache) == [b"c1", b"c2"]  # at most cache_max, least recently touched out first
    store.drop_idle(0, watermark=70_000)
    assert list(store.cache) == [b"c2"]  # c1's last event is more than a minute of event time old


def test_a_buried_conversation_leaves_its_tombstone() -> None:
    table: Table = {}
    store = ConversationStore(table, cache_max=10, cache_idle_ms=60_000)
    store.own(3)
    store.put(b"c1", 3, conversation(5000, queue="aftersales"))
    store.write_back(3)
    store.bury(b"c1", 3, conversation(5000, queue="aftersales"))
    assert b"c1" not in store.cache
    conv = conversation(5000, queue="aftersales")
    gone = ["acme", "acme-jd", "jd", "aftersales", 5000, state_to_compact(conv.state, 5000), {}]  # state, slots
    assert gone[5]  # (a closed conversation's state is not the default one, left off as [])
    assert decode_conversation_record(table[b"c1"]) == (3, None, gone, None)
    assert store.get(b"c1", 3) == (None, (gone, None))
