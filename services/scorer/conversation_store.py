"""Stage 1's conversations at rest: the table's records, a cache of decoded ones, and write-back per batch.

The table (a changelogged mapping) is the truth; the cache only saves decoding. A conversation stays
decoded while it had an event in the last `cache_idle_ms` of its partition's event time (and at most
`cache_max` in all, least recently touched out first): an idle one is ~1.5 KB decoded against ~0.2-1 KB of
table bytes, and its next event decodes it again. A conversation changed by an event is written once per
batch (`write_back`), not once per event; the caller writes back before the batch's offsets can be committed.

What the stage does with a conversation (events, retention, tombstones' day contributions) is the stage's.
"""

from __future__ import annotations

from collections import ChainMap, OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import Any

from services.core.conversation import Conversation, state_to_compact
from services.core.days import days_of, days_to_json
from services.core.wire import conversation_record, decode_conversation_record, tombstone_record

Table = MutableMapping[bytes, bytes]
Tombstone = tuple[list[Any], Any]  # (gone: [tenant, shop, platform, queue, last event ts], day contributions)


class ConversationStore:
    """The partitions' conversations: decoded from `table` on demand, cached, written back per batch."""

    def __init__(self, table: Table, *, cache_max: int, cache_idle_ms: int) -> None:
        self.table = table
        self.cache_max, self.cache_idle_ms = cache_max, cache_idle_ms
        # Per partition, least recently touched first.
        self.caches: dict[int, OrderedDict[bytes, Conversation]] = {}
        # Changed since the last write-back, per partition.
        self.unwritten: dict[int, dict[bytes, Conversation]] = {}

    # --- partitions ------------------------------------------------------------------------
    def own(self, partition: int) -> None:
        """A newly owned partition: nothing cached, nothing to write."""
        self.unwritten[partition] = {}
        self.caches[partition] = OrderedDict()

    def release(self, partitions: set[int]) -> None:
        """Partitions no longer owned: what they had unwritten is lost (their events are replayed), and
        every cache is emptied (a rebalance may have moved a conversation's newer record elsewhere)."""
        for p in partitions:
            self.unwritten.pop(p, None)
            self.caches.pop(p, None)
        for cache in self.caches.values():
            cache.clear()

    # --- conversations ---------------------------------------------------------------------
    def get(self, key: bytes, partition: int) -> tuple[Conversation | None, Tombstone | None]:
        """The conversation, or its tombstone if it was evicted, or (None, None) if the table holds neither."""
        conv = self.caches[partition].get(key)
        if conv is not None:
            return conv, None
        for unwritten in self.unwritten.values():  # changed in this batch, dropped from the cache meanwhile
            if (conv := unwritten.get(key)) is not None:
                return conv, None
        raw = self.table.get(key)
        if raw is None:
            return None, None
        _p, record, gone, days_raw = decode_conversation_record(raw)
        if gone is not None:
            return None, (gone, days_raw)
        conv = Conversation.from_json(record)
        conv.days = days_of(days_raw) or None
        return conv, None

    def put(self, key: bytes, partition: int, conv: Conversation) -> None:
        """An event changed `conv`: written at the next write-back, and kept decoded as the latest touched."""
        self.unwritten[partition][key] = conv
        cache = self.caches[partition]
        if key in cache:
            cache.move_to_end(key)
        else:
            cache[key] = conv
            if len(cache) > self.cache_max // len(self.caches):
                cache.popitem(last=False)

    def bury(self, key: bytes, partition: int, conv: Conversation) -> None:
        """Replace a closed conversation past retention by its tombstone: where it was, when it last moved, its
        state (who a rating or an order that can still come hours later credits), the agents' chat slots it held
        (a rebuild re-asserts them, should their last change have been lost in a crash) and its day
        contributions."""
        self.caches[partition].pop(key, None)
        gone = [conv.tenant, conv.shop_id, conv.platform, conv.state.queue, conv.last_event_ts,
                state_to_compact(conv.state, conv.last_event_ts), conv.agent_spans()]
        self.table[key] = tombstone_record(partition, gone, days_to_json(conv.days) if conv.days else None)

    def write_back(self, partition: int) -> bool:
        """Write the partition's changed conversations to the table; whether there were any."""
        unwritten = self.unwritten.get(partition)
        if not unwritten:
            return False
        for key, conv in unwritten.items():
            self.table[key] = conversation_record(
                partition, conv.to_json(), days_to_json(conv.days) if conv.days else None)
        unwritten.clear()
        return True

    def drop_idle(self, partition: int, watermark: int) -> None:
        """Stop keeping decoded the conversations without an event in the last `cache_idle_ms`."""
        cache = self.caches[partition]
        while cache:
            key, conv = next(iter(cache.items()))
            if conv.last_event_ts >= watermark - self.cache_idle_ms:
                break
            del cache[key]  # idle: decoded again from the table on its next event

    @property
    def cache(self) -> Mapping[bytes, Conversation]:
        """Every decoded conversation kept (all partitions)."""
        return ChainMap(*self.caches.values())
