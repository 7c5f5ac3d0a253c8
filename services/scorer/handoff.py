"""Stage 1's partial buckets handed to stage 2 in the same worker, so that stage 2 need not decode them again.

Every partial still goes through Kafka (stage 2 scores what it consumes, in the topic's order, and writes it to
its table as before); what is skipped is decoding a record this process has just encoded. Stage 1 offers each
bucket it publishes for a queue partition this worker merges, with the record's bytes; stage 2 takes the object
when the record it consumed has those very bytes (so it is what decoding them would give), and decodes when not:
a newer offer for the key replaced it, the worker restarted, or the partition moved. Stage 1 never changes a
bucket it handed on (`PartitionPartials.handed`), so sharing one is safe.

It holds at most `max_held` offers (SCORER_HANDOFF_MAX; oldest leave first, all of them on a rebalance). Stage 2
behind stage 1 by more than that (a worker catching up on a backlog) would only pin buckets it reads too late and
make stage 1 copy them on their next change, so stage 1 stops handing on while the handoff is `full`, and stage 2
decodes as before. (A first version that held up to 50,000 took 28 % of the partials of a small floor's day in a
catch-up, and its worker held 430-480 MB where one without it held 190-230.)

An offer keeps an exact-size copy of the record's bytes: orjson's own bytes keep its ~4 KiB working buffer alive
(`services.core.wire.kept`), and a tick hands on up to thousands of partials at once.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, max_held: int) -> None:
        self.max_held = max_held
        self.held: dict[bytes, tuple[bytes, T]] = {}  # record key -> (record value, the object), oldest first

    def offer(self, key: bytes, value: bytes, obj: T) -> None:
        held = self.held
        held.pop(key, None)  # the newest offer for a key is the one kept, and it goes to the back
        held[key] = (bytes(memoryview(value)), obj)  # exact size: not orjson's 4 KiB buffer
        if len(held) > self.max_held:
            del held[next(iter(held))]

    def take(self, key: bytes, value: bytes) -> T | None:
        """The object offered with exactly this record (once), else None."""
        entry = self.held.get(key)
        if entry is None or entry[0] != value:
            return None
        del self.held[key]
        return entry[1]

    @property
    def full(self) -> bool:
        return len(self.held) >= self.max_held

    def clear(self) -> None:
        self.held.clear()
