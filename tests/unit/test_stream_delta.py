"""The stream's compact delta format: patches that rebuild exactly what a full stream shows."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from services.api.app import create_app
from services.api.delta import NO_CHANGE, apply_patch, patch, views_delta
from services.api.settings import ApiSettings
from services.api.views import ViewStore

from .test_stream import SSEClient, bump, filled_store

leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3),
                 st.lists(st.integers(), max_size=3))
tree = st.recursive(leaf, lambda kids: st.dictionaries(st.sampled_from("abcde"), kids, max_size=4), max_leaves=12)


@pytest.fixture
def store() -> ViewStore:
    return filled_store()


@pytest.fixture
def app(store: ViewStore) -> FastAPI:
    return create_app(ApiSettings(), store=store)


@given(tree, tree)
def test_a_patch_takes_old_to_new(old: Any, new: Any) -> None:
    change = patch(old, new)
    if change is NO_CHANGE:
        assert old == new
    elif change is None:  # new lost a key somewhere: the whole value is sent instead
        assert old != new
    else:
        assert apply_patch(old, change) == new


def test_a_patch_holds_only_what_changed() -> None:
    old = {"as_of": "t1", "live": {"open": 3, "waits": [1, 2]}, "windows": {"5m": {"span_s": 300.0, "frt": None}}}
    new = {"as_of": "t2", "live": {"open": 3, "waits": [1, 2, 3]}, "windows": {"5m": {"span_s": 301.0, "frt": None}}}
    assert patch(old, new) == {"as_of": "t2", "live": {"waits": [1, 2, 3]}, "windows": {"5m": {"span_s": 301.0}}}
    assert patch(old, {"as_of": "t2"}) is None  # keys went: no patch can say so


def test_views_delta_names_new_changed_and_removed_views() -> None:
    sent: dict[str, Any] = {}
    a, b = {"queue": "a", "n": 1}, {"queue": "b", "n": 1}
    assert views_delta(sent, [a, b]) == {"replace": {"a": a, "b": b}}
    assert views_delta(sent, [a, b]) == {}
    assert views_delta(sent, [{"queue": "a", "n": 2}]) == {"views": {"a": {"n": 2}}, "removed": ["b"]}
    assert sent == {"a": {"queue": "a", "n": 2}}


async def test_a_delta_stream_shows_what_a_full_stream_shows_in_a_fraction_of_the_bytes(
        app: FastAPI, store: ViewStore) -> None:
    async with SSEClient(app) as full, SSEClient(app, "delta=1") as delta:
        first = await delta.next_event("views")
        held = {v["queue"]: v for v in first["queues"]}
        signals = dict(first["signals"])
        await full.next_event("views")
        sizes: list[tuple[int, int]] = []
        for n in range(2, 5):  # (the store starts with one buyer waiting)
            await bump(store, awaiting_reply=n)
            shown = await full.next_event("views")
            d = await delta.next_event("delta")
            for q, p in d.get("views", {}).items():
                held[q] = apply_patch(held[q], p)
            held.update(d.get("replace", {}))
            for q in d.get("removed", []):
                held.pop(q)
                signals.pop(q, None)
            signals.update(d.get("signals", {}))
            assert [held[q] for q in sorted(held)] == shown["queues"]
            assert signals == shown["signals"]
            assert d["as_of"] == shown["as_of"] and "options" not in d  # the options did not change
            sizes.append((len(orjson.dumps(shown)), len(orjson.dumps(d))))
            assert d["views"] and all(p["live"] == {"awaiting_reply": n} for p in d["views"].values())
        await asyncio.sleep(0)
    assert all(small * 4 < big for big, small in sizes), sizes
