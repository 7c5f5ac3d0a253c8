"""Query parameters shared by the API's routes (one definition, so the OpenAPI schema names one type)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

# tenant / shop_id / platform filters: absent means all.
Filter = Annotated[str | None, Query(max_length=128)]
