"""Query parameters shared by the API's routes (one definition, so the OpenAPI schema names one type)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

# tenant / shop_id / platform filters: absent means all.
Filter = Annotated[str | None, Query(max_length=128)]

# A queue (or other) name given as a required query parameter: the contract's name bound.
Name = Annotated[str, Query(min_length=1, max_length=128)]

# The what-if calculator's documented ranges (API.md): beyond any real floor, and small enough that the
# offered load λ·AHT stays a number the Erlang code refuses cleanly (422) rather than overflows (500).
MAX_ARRIVALS_PER_HOUR = 1_000_000.0
MAX_AHT_S = 86_400.0
MAX_CONCURRENCY = 100.0
# The calculator's work grows with the chat slots it searches (about 0.4 s of CPU at a million, unauthenticated):
# offered load / max_occupancy is held to this many slots (40 ms), far past any real floor.
MAX_SLOTS = 100_000
