"""Bytes the scorer keeps are exact-size copies (orjson's own output holds its ~4 KiB buffer)."""

from __future__ import annotations

import sys
import tracemalloc

from services.core.scope import Scope
from services.core.wire import kept, partial_key, source_prefix, source_prefix_of
from services.scorer.inprocess import InProcessScorer


def test_kept_bytes_are_exact_size() -> None:
    value = {"pt": 1, "gone": ["acme", "acme-jd", "jd", "presales", 1_800_000_000_000]}
    raw = kept(value)
    assert sys.getsizeof(raw) < len(raw) + 64  # header only, no spare buffer


def test_scorer_tables_hold_exact_size_values() -> None:
    s = InProcessScorer()
    s.feed([{"event_id": "o", "type": "conversation.opened", "ts": 1_800_000_000_000, "tenant": "t",
             "shop_id": "s", "platform": "jd", "conversation_id": "c", "queue": "q"}])
    s.tick(1_800_000_000_000)
    for table in (s.conv_table, s.partials_table):
        assert table and all(sys.getsizeof(v) < len(v) + 64 for v in table.values())


def test_partial_keys_are_exact_size() -> None:
    """Stage 2's table is keyed by them (sys.getsizeof does not see orjson's spare buffer; tracemalloc does)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        keys = [partial_key("c", 1, Scope("acme", "acme-jd", "jd", "presales"), slot) for slot in range(100)]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(keys) == 100 and used < 100 * 200  # ~4 KiB each before


def test_a_partial_key_starts_with_its_sources_prefix_and_only_that() -> None:
    scope = Scope("acme", "s1", "jd", "presales")
    sources = (("c", 0), ("c", 1), ("c", 11), ("a", 3), ("d", 10))
    assert source_prefix("c", 11) == b'["c",11,'  # the key format: a JSON array, source and partition first
    assert len({source_prefix(src, part) for src, part in sources}) == len(sources)
    for src, part in sources:
        for key in (partial_key(src, part, scope, 60_000), partial_key(src, part, scope, 60_000, 15_000, 1000),
                    partial_key(src, part, Scope("", "", "", ""), -5)):
            assert key.startswith(source_prefix(src, part))
            assert source_prefix_of(key) == source_prefix(src, part)
