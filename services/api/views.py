"""The API's copy of the queue views, mirrored from stage 2's compacted views topic.

The API never computes a figure itself: every number it serves was published by stage 2.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import orjson

from services.core.figures import QueueView
from services.core.scope import ALL, Scope, is_agent_scope
from services.core.wire import parse_day_view_key, parse_view_key

from .mirror import TopicMirror

log = logging.getLogger(__name__)



class ViewStore(TopicMirror):
    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.views: dict[Scope, QueueView] = {}
        # The scorecard's day records (services.core.days), sharing the topic: (scope, period start) -> record.
        self.days: dict[tuple[Scope, int], dict[str, Any]] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        try:
            day = parse_day_view_key(key)
            if day is not None:
                if value is None:
                    self.days.pop(day, None)
                else:
                    self.days[day] = orjson.loads(value)
                return
            vkey = parse_view_key(key)
        except (ValueError, TypeError, orjson.JSONDecodeError):
            log.warning("ignoring a views record with a bad key")
            return
        if value is None:
            self.views.pop(vkey, None)
        else:
            self.views[vkey] = cast(QueueView, orjson.loads(value))  # as stage 2 published it

    def select(self, queue: str | None, tenant: str | None, shop_id: str | None, platform: str | None
               ) -> list[QueueView]:
        """Views matching the filters: without shop_id the roll-up for tenant/platform (or all)."""
        out = []
        for key, view in self.views.items():
            if (queue is not None and key.queue != queue) or is_agent_scope(key.queue):
                continue
            if shop_id is not None:
                if key.shop_id != shop_id or (tenant is not None and key.tenant != tenant) or (
                        platform is not None and key.platform != platform):
                    continue
            elif key.shop_id != ALL or key.tenant != (tenant or ALL) or key.platform != (platform or ALL):
                continue
            out.append(view)
        out.sort(key=lambda v: (v["queue"], v["scope"]["shop_id"]))
        return out
