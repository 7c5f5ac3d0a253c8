"""The API's copy of the queue views: a reader of stage 2's compacted views topic.

It reads every partition from the beginning without a consumer group, so any number of
API replicas hold the same views; it never computes a figure itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from services.core.wire import parse_view_key

log = logging.getLogger(__name__)

ViewKey = tuple[str, str, str, str]  # (queue, tenant, shop, platform); '*' = all


class ViewStore:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.views: dict[ViewKey, dict[str, Any]] = {}
        self.caught_up = asyncio.Event()
        self.changed = asyncio.Condition()
        self.version = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="view-store")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            # No group: every partition from the beginning, so every replica reads the same views.
            consumer = AIOKafkaConsumer(
                self.topic, bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                auto_offset_reset="earliest", group_id=None,
            )
            try:
                await consumer.start()
                end: dict[TopicPartition, int] | None = None
                while True:
                    batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                    for records in batch.values():
                        for rec in records:
                            self._apply(rec.key, rec.value)
                    if batch:
                        await self._notify()
                    if not self.caught_up.is_set():
                        tps = consumer.assignment()
                        if not tps:
                            continue
                        if end is None:
                            end = await consumer.end_offsets(list(tps))
                        positions = [(await consumer.position(tp), end.get(tp, 0)) for tp in tps]
                        if all(pos >= last for pos, last in positions):
                            self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("views reader lost Kafka; retrying", exc_info=True)
                await asyncio.sleep(2)
            finally:
                await consumer.stop()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        try:
            vkey = parse_view_key(key)
        except (ValueError, orjson.JSONDecodeError):
            log.warning("ignoring a views record with a bad key")
            return
        if value is None:
            self.views.pop(vkey, None)
        else:
            self.views[vkey] = orjson.loads(value)

    async def _notify(self) -> None:
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    def select(self, queue: str | None, tenant: str | None, shop_id: str | None, platform: str | None
               ) -> list[dict[str, Any]]:
        """Views matching the filters: without shop_id the roll-up for tenant/platform (or all)."""
        out = []
        for (q, t, s, p), view in self.views.items():
            if queue is not None and q != queue:
                continue
            if shop_id is not None:
                if s != shop_id or (tenant is not None and t != tenant) or (platform is not None and p != platform):
                    continue
            elif s != "*" or t != (tenant or "*") or p != (platform or "*"):
                continue
            out.append(view)
        out.sort(key=lambda v: (v["queue"], v["scope"]["shop_id"]))
        return out
