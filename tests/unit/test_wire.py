"""Bytes the scorer keeps are exact-size copies (orjson's own output holds its ~4 KiB buffer)."""

from __future__ import annotations

import sys

from services.core.wire import kept
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
