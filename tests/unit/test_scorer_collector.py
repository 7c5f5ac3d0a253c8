"""The worker's cyclic-collector settings (services/scorer/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.scorer import collector


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    collector.configure(before)


@pytest.mark.parametrize(("raw", "want"), [
    ("50000,20,100", (50000, 20, 100)),
    (" python ", (700, 10, 10)),
    ("700, 10, 10", (700, 10, 10)),
])
def test_thresholds_read(raw: str, want: tuple[int, int, int]) -> None:
    assert collector.parse_thresholds(raw) == want


@pytest.mark.parametrize("raw", ["", "50000", "1,2", "1,2,3,4", "0,10,10", "a,b,c", "-5,10,10"])
def test_bad_thresholds_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="SCORER_GC_THRESHOLDS"):
        collector.parse_thresholds(raw)


def test_thresholds_set_and_every_collection_reported_once() -> None:
    seen: list[tuple[int, float]] = []
    collector.configure((12345, 7, 3), lambda gen, s: seen.append((gen, s)))
    assert gc.get_threshold() == (12345, 7, 3)
    gc.collect(1)
    gc.collect(2)
    assert [gen for gen, _ in seen] == [1, 2]
    assert all(s >= 0 for _, s in seen)
    # A second configure replaces the report, it does not add a second one.
    again: list[int] = []
    collector.configure((12345, 7, 3), lambda gen, _s: again.append(gen))
    gc.collect(0)
    assert again == [0]
    assert [gen for gen, _ in seen] == [1, 2]
