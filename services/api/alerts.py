"""Alerts in the API: a read_committed mirror of the alerts topic, and acknowledgements.

Stage 2 writes alert changes and its engine snapshots in transactions; an acknowledgement is
a record `ack:<alert id>` on the same topic, so every API replica shows the same ack.

A firing alert is published when it fires, escalates and resolves, not at every reading, so its
`value` is the reading that fired it. The API adds `current_value` (and `current_as_of`): the value
the same rule compared on the view of the alert's scope, as the scorer published it with the view
(`CurrentValues`, `judged.values`). Without that view, `current_value` is the alert's last published one.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import orjson
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Header, HTTPException, Path
from pydantic import BaseModel, Field

from services.core.kafka_security import client_kwargs
from services.core.merge import iso
from services.core.scope import Scope
from services.core.wire import ALERT_ACK_PREFIX, ENGINE_KEY_PREFIX, alert_partition

from .mirror import TopicMirror
from .settings import ApiSettings
from .views import ViewStore


class CurrentValues:
    """A firing alert's reading now: the value its rule compared on the view of its scope, as the scorer
    judged it with the view (`judged.values`), and that view's as_of; None without a reading. The API
    judges nothing itself."""

    def __init__(self, views: ViewStore) -> None:
        self.views = views

    def __call__(self, alert: dict[str, Any]) -> tuple[float | None, str] | None:
        view = self.views.views.get(Scope._make(alert.get(part) for part in Scope._fields))  # the alert's scope
        verdict = None if view is None else view.get("judged")
        values = None if verdict is None else verdict.get("values")
        rule = alert.get("rule")
        value = values.get(rule) if isinstance(values, dict) and isinstance(rule, str) else None
        if view is None or not isinstance(value, int | float):
            return None
        return float(value), str(view.get("as_of"))


class AlertStore(TopicMirror):
    isolation_level = "read_committed"  # only alerts whose engine snapshot committed with them

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.alerts: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        # Called with each alert that changed once the mirror caught up (history is not news).
        self.on_change: Callable[[dict[str, Any]], None] | None = None
        # A firing alert's reading now (`CurrentValues`); None: the last published one.
        self.current: Callable[[dict[str, Any]], tuple[float | None, str] | None] | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key or key.startswith(ENGINE_KEY_PREFIX.encode()):
            return
        if key.startswith(ALERT_ACK_PREFIX):
            target = self.acks
            name = key[len(ALERT_ACK_PREFIX):].decode("utf-8", "replace")
        else:
            target = self.alerts
            name = key.decode("utf-8", "replace")
        if value is None:
            target.pop(name, None)
        else:
            target[name] = orjson.loads(value)
        if self.on_change is not None and self.caught_up.is_set() and (alert := self.get(name)) is not None:
            self.on_change(alert)

    def get(self, alert_id: str) -> dict[str, Any] | None:
        alert = self.alerts.get(alert_id)
        if alert is None:
            return None
        ack = self.acks.get(alert_id)
        out = {**alert, **ack} if ack else dict(alert)
        if out.get("current_value") is None:  # records from before the engine kept it: the published value
            out["current_value"] = out.get("value")
        out["current_as_of"] = out.get("updated_at")
        if out.get("state") == "firing" and self.current is not None and (now := self.current(out)) is not None:
            out["current_value"], out["current_as_of"] = now
        return out

    def list(self, state: str) -> list[dict[str, Any]]:
        out = [a for i in self.alerts if (a := self.get(i)) is not None and (state == "all" or a["state"] == state)]
        out.sort(key=lambda a: (a["state"] != "firing", a["severity"] != "critical", a["started_at"]))
        return out


class AckBody(BaseModel):
    by: str = Field(default="api", min_length=1, max_length=128, description="who acknowledges")


def mount_alerts(app: FastAPI, store: AlertStore, cfg: ApiSettings) -> Callable[[], Awaitable[None]]:
    """Adds the alert routes; returns the coroutine function that closes the ack producer."""
    producer: dict[str, AIOKafkaProducer] = {}

    async def ack_producer() -> AIOKafkaProducer:
        if "p" not in producer:
            p = AIOKafkaProducer(
                bootstrap_servers=cfg.kafka.bootstrap, acks="all", enable_idempotence=True, **client_kwargs()
            )
            await p.start()
            producer["p"] = p
        return producer["p"]

    @app.get("/v1/alerts")
    async def list_alerts(state: Literal["firing", "resolved", "all"] = "firing") -> dict[str, Any]:
        """Floor alerts: firing ones first, critical before warning. `value` is the reading at firing
        (or escalation), `current_value` the reading now (as of `current_as_of`)."""
        return {"alerts": store.list(state)}

    @app.get("/v1/alerts/{alert_id}")
    async def get_alert(alert_id: Annotated[str, Path(max_length=1024)]) -> dict[str, Any]:
        alert = store.get(alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        return alert

    @app.post("/v1/alerts/{alert_id}/ack", status_code=202)
    async def ack_alert(
        alert_id: Annotated[str, Path(max_length=1024)], body: AckBody | None = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """Acknowledge an alert (needs `Authorization: Bearer $API_TOKEN`)."""
        if not cfg.token:
            raise HTTPException(503, "API_TOKEN is not configured: writes are refused")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), cfg.token.encode()):
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        alert = store.get(alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        ack = {"acknowledged_by": (body or AckBody()).by, "acknowledged_at": iso(int(time.time() * 1000))}
        p = await ack_producer()
        await p.send_and_wait(
            cfg.kafka.topics.alerts, key=ALERT_ACK_PREFIX + alert_id.encode(), value=orjson.dumps(ack),
            partition=alert_partition(alert["queue"], alert["shop_id"], cfg.kafka.queue_partitions),
        )
        return {**alert, **ack}

    async def close() -> None:
        if "p" in producer:
            await producer.pop("p").stop()

    return close
