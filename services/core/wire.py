"""Record formats on the scorer's internal topics and the views topic the API reads."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any, Final, NamedTuple

import orjson

from .scope import ALL, Scope

# Slots of a partial record besides a bucket start (which is >= 0).
SLOT_LIVE: Final = -1
SLOT_AGENTS: Final = -2
SLOT_WATERMARK: Final = -3
SLOT_AGENT_STATE: Final = -4  # one agent's status, capacity, chats and change history (its own view)
# A stage that rebuilt a partition re-sends all it holds for it between these two (on every queue partition): the
# merging stage then drops what that source sent before and did not send again (`QueueStage`: a retraction lost
# in a crash would otherwise stay merged for good).
SLOT_RESEND_BEGIN: Final = -5
SLOT_RESEND_END: Final = -6

SRC_CONVERSATIONS: Final = "c"
SRC_AGENTS: Final = "a"
SRC_DAYS: Final = "d"  # the scorecard's day state (services.core.days): slot = the period's start ms
# Stage 1's ledger of settled day sums lives in the conversations table under keys starting with this (no
# conversation key can: event keys are printable).
DAY_LEDGER_PREFIX: Final = b"\x00day:"
# And its watermark per partition under this and the partition's number: an event that leaves no conversation
# state (an agent's status) moves it too, and a rebuild must not start behind where the partition was.
WATERMARK_KEY_PREFIX: Final = b"\x00wm:"
# The views topic carries stage 2's day records too: key [DAY_VIEW_TAG, tenant, shop, platform, who, start].
DAY_VIEW_TAG: Final = "@day"
# The alerts topic: an API's acknowledgement of alert <id> is the record `ack:<id>` (it leaves with the alert).
ALERT_ACK_PREFIX: Final = b"ack:"
ENGINE_KEY_PREFIX: Final = "__engine__:"  # alert engine snapshots share the alerts topic with the alerts


@lru_cache(maxsize=65_536)  # pure, and asked per partial and per view on every step: a crc32 once per queue
def queue_partition(queue: str, partitions: int) -> int:
    """Stage 2's partition for a queue: every partial and view of one queue lands in one place."""
    return zlib.crc32(queue.encode()) % partitions


# The scorecard's shop-hour records' pseudo-queue (services.core.days): spreads shops over stage 2's partitions.
SHOP_PREFIX: Final = "@shop:"


def alert_partition(queue: str, shop_id: str, partitions: int) -> int:
    """The alerts topic partition of a scope's alerts (the stage 2 partition that judges it): a shop's
    platform_budget (queue "*") is judged where its shop-hour records land."""
    return queue_partition(SHOP_PREFIX + shop_id if queue == ALL else queue, partitions)


def partial_key(src: str, part: int, scope: Scope, slot: int, width: int | None = None, base_ms: int = 0) -> bytes:
    """A partial's key; `width`: a bucket's width (services.core.bucket_widths), in the key only when it is wider
    than `base_ms`, the source bucket size (a base-width key is unchanged since before buckets widened); None
    for the other slots."""
    # Kept: stage 2's table is keyed by these (in one process, the very objects; see `kept`).
    width = keyed_width(width, base_ms)
    return kept([src, part, *scope, slot] if width is None else [src, part, *scope, slot, width])


def source_prefix(src: str, part: int) -> bytes:
    """What every `partial_key` of a source's partition starts with: '["c",3,'."""
    return kept([src, part])[:-1] + b","


def source_prefix_of(key: bytes) -> bytes:
    """A `partial_key`'s `source_prefix` (its first two items: the source is a letter, the partition a number)."""
    return key[:key.find(b",", key.find(b",") + 1) + 1]


def keyed_width(width: int | None, base_ms: int) -> int | None:
    """The width a partial's key carries (and `PartialKey.width` reads back): only one wider than `base_ms`."""
    return None if width is None or width == base_ms else width


# The partials topic carries partials in bundles: one record per queue partition per send of a stage, holding
# that send's partials for it in order. Faust's cost is per record (its fetch loop, ~1,850 records a second on a
# loaded 2-core machine, fell behind on one record per partial and starved stage 2: benchmarks/PROFILE.md,
# "Partials in bundles"), and a stage 1 step changes ~1.2 partials per event. A bundle's key: this prefix and the
# sender's own sequence, unique (nothing is compacted away); each partial inside keeps its own key, which the
# merging stage's table is keyed by.
BUNDLE_KEY_PREFIX: Final = b"\x00partials:"
_ENTRY = struct.Struct(">ii")  # key length, value length (-1: a tombstone)


def bundle_partials(partials: Iterable[tuple[bytes, bytes | None]]) -> bytes:
    """One bundle's value: each partial's key and value (None: its tombstone), in order."""
    return b"".join(_ENTRY.pack(len(k), -1 if v is None else len(v)) + k + (v or b"") for k, v in partials)


def unbundle_partials(raw: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    """The partials of a bundle, in order: slices of `raw` (`bytes` slices are copies, each exactly its size)."""
    pos, end, unpack = 0, len(raw), _ENTRY.unpack_from
    while pos < end:
        key_len, value_len = unpack(raw, pos)
        pos += 8
        key = raw[pos : pos + key_len]
        pos += key_len
        if value_len < 0:
            yield key, None
            continue
        yield key, raw[pos : pos + value_len]
        pos += value_len
    if pos != end:
        raise ValueError("a partials bundle ends inside an entry")


def is_bundle_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(BUNDLE_KEY_PREFIX)


class PartialKey(NamedTuple):
    src: str
    part: int
    scope: Scope
    slot: int
    width: int | None  # see `partial_key`


def parse_partial_key(raw: bytes) -> PartialKey:
    src, part, tenant, shop, platform, queue, slot, *width = orjson.loads(raw)
    return PartialKey(str(src), int(part), Scope(tenant, shop, platform, queue), int(slot),
                      int(width[0]) if width else None)


def view_key(key: Scope) -> bytes:
    """[queue, tenant, shop, platform] with '*' for all: queue first (`Scope.queue_first`)."""
    return orjson.dumps(list(key.queue_first()))


def parse_view_key(raw: bytes) -> Scope:
    return Scope.from_queue_first(orjson.loads(raw))


def ledger_key(part: int, scope: Scope, start: int) -> bytes:
    return DAY_LEDGER_PREFIX + kept([part, *scope, start])


def watermark_key(part: int) -> bytes:
    return WATERMARK_KEY_PREFIX + str(part).encode()


def parse_watermark_key(raw: bytes) -> int:
    """The partition of a `watermark_key`."""
    return int(raw[len(WATERMARK_KEY_PREFIX):])


def parse_ledger_key(raw: bytes) -> tuple[int, Scope, int]:
    part, tenant, shop, platform, who, start = orjson.loads(raw[len(DAY_LEDGER_PREFIX):])
    return int(part), Scope(tenant, shop, platform, who), int(start)


def day_view_key(scope: Scope, start: int) -> bytes:
    return orjson.dumps([DAY_VIEW_TAG, *scope, start])


def parse_day_view_key(raw: bytes) -> tuple[Scope, int] | None:
    """(scope, period start) of a day record's key; None for any other views key."""
    key = orjson.loads(raw)
    if not (isinstance(key, list) and len(key) == 6 and key[0] == DAY_VIEW_TAG):
        return None
    _tag, tenant, shop, platform, who, start = key
    return Scope(str(tenant), str(shop), str(platform), str(who)), int(start)


def kept(value: Any) -> bytes:
    """JSON bytes to be *kept* (in a table or a cache): an exact-size copy.

    orjson returns bytes that keep its whole working buffer (about 4 KiB) alive; a state
    store holding one per conversation or bucket would spend 4 KiB on each (measured:
    4,120 bytes per 70-byte record, against 122 for the copy). The copy costs nothing measurable.
    """
    return bytes(memoryview(orjson.dumps(value)))


# The conversations table's values (stage 1). A conversation is [partition, Conversation.to_json()] or, with day
# contributions, [partition, Conversation.to_json(), days]; a tombstone (a conversation past retention) is
# {"pt": partition, "gone": [tenant, shop, platform, queue, last event ts]} with "d": days when it has any.
# (Day ledger entries share the table under their own key prefix: not decoded here.)


def conversation_record(partition: int, conversation: Any, days: Any = None) -> bytes:
    return kept([partition, conversation, days] if days else [partition, conversation])


def tombstone_record(partition: int, gone: list[Any], days: Any = None) -> bytes:
    tomb: dict[str, Any] = {"pt": partition, "gone": gone}
    if days:
        tomb["d"] = days
    return kept(tomb)


def record_partition(raw: bytes) -> int:
    """The partition of a conversations-table record (as `decode_conversation_record` gives it), read from its first
    bytes: a rebuild skips the records of the partitions it does not rebuild without decoding them."""
    head = raw[:24]
    try:
        if head.startswith(b"["):
            return int(head[1:head.index(b",")])
        if head.startswith(b'{"pt":'):
            return int(head[6:head.index(b",")])
    except ValueError:
        pass
    return decode_conversation_record(raw)[0]  # (a layout this reading does not know: decoded whole)


def decode_conversation_record(raw: bytes) -> tuple[int, Any, list[Any] | None, Any]:
    """(partition, conversation record or None, tombstone or None, its day contributions or None)."""
    record = orjson.loads(raw)
    if isinstance(record, list):
        return int(record[0]), record[1], None, record[2] if len(record) > 2 else None
    return int(record["pt"]), None, record.get("gone"), record.get("d")
