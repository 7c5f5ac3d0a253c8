"""Alert episodes from the rules' verdicts (shared/METRICS.md, "Alerts").

Pure: no I/O, no clock. Time comes in as epoch milliseconds. The thresholds, the inputs (`Signals`,
from one queue view by `signals_from_view`) and the per-reading verdicts (`judge`) live in
`alert_config`, `alert_signals` and `alert_judging` (the sentences in `alert_texts`); this module
adds time: `AlertEngine.evaluate(signals_by_scope, now_ms)` judges every
rule for every scope once per call and returns the alert *changes*: a new firing alert, an update of
the same alert (same id) when its severity rises, a resolution. Its whole state (pending timers,
open episodes) round-trips through `to_json()` / `from_json()`, so a restored engine continues the
same episodes with the same ids; a tick at or before the last evaluated one returns no changes
(replays re-send nothing). Persist the state together with the changes it published.

Per (rule, scope) the engine keeps two "since" timers for the firing levels (warning, critical) and
one for clearing. A level fires (or escalates an open alert) once its condition has held for the
rule's hold time; an open alert resolves once the clear condition has held for the clear time. A
reading between the levels (peak_load's 0.8 ≤ ρ < 0.9) resets the timers on both sides, so a signal
flapping around a threshold yields one episode, never a stream. Severity never drops within an
episode (a critical alert stays critical until it resolves). A signal that is missing (None: no
data) changes no timer: it neither fires, nor clears, nor resets anything. A scope that disappears
from the input resolves its open alerts once it has been absent for the rule's clear time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final, Literal

from .alert_config import RULES, AlertRules, Rule, Severity, Thresholds
from .alert_judging import Judgement, judge
from .alert_signals import Signals, alert_group
from .alert_texts import firing_text, labels, resolved_text
from .merge import iso
from .scope import Scope

__all__ = ["Alert", "AlertEngine"]

AlertState = Literal["firing", "resolved"]
_RANK: Final[dict[str, int]] = {"warning": 1, "critical": 2}
_STATE_VERSION: Final = 1


# ---------------------------------------------------------------------------------------------
# Alerts and the engine


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert episode as last published. Times are RFC 3339 UTC. While firing, `value` is the
    reading that fired it (or escalated it) and `current_value` the latest reading the engine judged;
    at resolution `value` and `threshold` are the comparison that cleared it; acknowledgement is set
    by the API, not here."""

    id: str
    rule: Rule
    queue: str
    tenant: str
    shop_id: str
    platform: str
    severity: Severity
    state: AlertState
    started_at: str
    resolved_at: str | None
    updated_at: str
    value: float | None
    threshold: float | None
    summary_zh: str
    summary_en: str
    time_to_breach_s: float | None
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    current_value: float | None = None
    # The roll-up it is grouped under (`alert_signals.alert_group`): a queue's alert across shops and
    # its shops' alerts of the same rule share it, and page as one notification.
    group: str | None = None

    @property
    def scope(self) -> Scope:
        return Scope(tenant=self.tenant, shop_id=self.shop_id, platform=self.platform, queue=self.queue)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Alert:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names[:16] if n not in raw]
        if missing:
            raise ValueError(f"alert is missing {', '.join(missing)}")
        out = cls(**{n: raw[n] for n in names if n in raw})
        if out.rule not in RULES or out.severity not in _RANK or out.state not in ("firing", "resolved"):
            raise ValueError(f"alert {out.id!r} has an unknown rule, severity or state")
        return out


@dataclass(slots=True)
class _Track:
    """Timers of one (rule, scope); kept only while something is pending or firing."""

    warn_since: int | None = None
    crit_since: int | None = None
    clear_since: int | None = None
    last_seen: int = 0
    alert: Alert | None = None


_TrackKey = tuple[Rule, Scope]


def _track_order(key: _TrackKey) -> tuple[str, tuple[str, str, str, str]]:
    """Tracks in rule, then scope order (queue first, as views sort)."""
    rule, scope = key
    return rule, scope.queue_first()


SURGE_WARMUP_MS = 3_600_000
# A resolved alert stays listed (GET /v1/alerts?state=resolved) this long, then leaves the alerts topic.
RESOLVED_RETENTION_MS = 86_400_000


class AlertEngine:
    """Alert episodes per (rule, scope) from successive `evaluate` calls; see the module docstring."""

    def __init__(self, rules: AlertRules | None = None, resolved_retention_ms: int = RESOLVED_RETENTION_MS) -> None:
        self.rules = rules if rules is not None else AlertRules()
        self.resolved_retention_ms = resolved_retention_ms
        # Resolved alerts (resolved at, id), oldest first: tombstoned once past the retention (`expired`).
        self._resolved: list[tuple[int, str]] = []
        self._tracks: dict[_TrackKey, _Track] = {}
        self._last_now: int | None = None
        # When each scope was first judged: a surge compares 5 minutes with the trailing hour, which
        # means nothing until an hour of the scope's traffic has been seen (a floor opening is no surge).
        self._first_seen: dict[Scope, int] = {}

    def open_alerts(self) -> list[Alert]:
        """The firing alerts, as last published."""
        return [t.alert for _, t in self._tracks_in_order() if t.alert is not None]

    def _tracks_in_order(self) -> list[tuple[_TrackKey, _Track]]:
        return sorted(self._tracks.items(), key=lambda item: _track_order(item[0]))

    def evaluate(self, signals: Mapping[Scope, Signals], now_ms: int) -> list[Alert]:
        """Judge every rule for every scope at `now_ms`; the changes, in scope then rule order."""
        if isinstance(now_ms, bool) or not isinstance(now_ms, int):
            raise TypeError(f"now_ms must be epoch milliseconds (int), got {now_ms!r}")
        if self._last_now is not None and now_ms <= self._last_now:
            return []
        self._last_now = now_ms
        out: list[Alert] = []
        for scope in sorted(signals, key=Scope.queue_first):
            sig, th = signals[scope], self.rules.thresholds_for(scope.queue)
            first = self._first_seen.setdefault(scope, now_ms)
            if now_ms - first < SURGE_WARMUP_MS and sig.surge_ratio is not None:
                sig = dataclasses.replace(sig, surge_ratio=None)
            for rule in RULES:
                key = (rule, scope)
                if th.enabled(rule):
                    change = self._step(key, judge(rule, sig, th), sig, th, now_ms)
                elif (track := self._tracks.pop(key, None)) is not None and track.alert is not None:
                    change = self._resolve(track.alert, Judgement("clear", reason="disabled"), None, th, now_ms)
                else:
                    change = None
                if change is not None:
                    out.append(change)
        for key in sorted((k for k in self._tracks if k[1] not in signals), key=_track_order):
            rule, scope = key
            track, th = self._tracks[key], self.rules.thresholds_for(scope.queue)
            if now_ms - track.last_seen >= th.clear_ms(rule):
                del self._tracks[key]
                if track.alert is not None:
                    out.append(self._resolve(track.alert, Judgement("clear", reason="absent"), None, th, now_ms))
        # A scope that went (its views were tombstoned after an idle hour) starts its surge warm-up afresh.
        tracked = {scope for _, scope in self._tracks}
        for scope in [s for s in self._first_seen if s not in signals and s not in tracked]:
            del self._first_seen[scope]
        self._resolved.extend((now_ms, a.id) for a in out if a.state == "resolved")
        return out

    def expired(self, now_ms: int) -> list[str]:
        """Ids of alerts resolved longer ago than the retention: to be tombstoned (and forgotten)."""
        cut = 0
        while cut < len(self._resolved) and self._resolved[cut][0] <= now_ms - self.resolved_retention_ms:
            cut += 1
        gone = [alert_id for _, alert_id in self._resolved[:cut]]
        del self._resolved[:cut]
        return gone

    def _step(self, key: _TrackKey, j: Judgement, sig: Signals, th: Thresholds, now: int) -> Alert | None:
        rule, scope = key
        track = self._tracks.get(key)
        if j.kind == "gap":
            if track is not None:
                track.last_seen = now
            return None
        if track is None:
            if j.level is None:
                return None
            track = self._tracks[key] = _Track()
        track.last_seen = now
        if j.level is None:
            track.warn_since = track.crit_since = None
        else:
            track.warn_since = now if track.warn_since is None else track.warn_since
            if j.level == "critical":
                track.crit_since = now if track.crit_since is None else track.crit_since
            else:
                track.crit_since = None
        hold = th.hold_ms(rule)
        held: Severity | None = None
        if track.crit_since is not None and now - track.crit_since >= hold:
            held = "critical"
        elif track.warn_since is not None and now - track.warn_since >= hold:
            held = "warning"

        alert = track.alert
        if alert is None:
            if held is not None:
                track.alert = self._fire(rule, scope, held, j, sig, th, now)
                return track.alert
            if track.warn_since is None:
                del self._tracks[key]
            return None
        if j.kind == "clear":
            track.clear_since = now if track.clear_since is None else track.clear_since
            if now - track.clear_since >= th.clear_ms(rule):
                del self._tracks[key]
                return self._resolve(alert, j, sig, th, now)
        else:
            track.clear_since = None
        if held is not None and _RANK[held] > _RANK[alert.severity]:
            zh, en = firing_text(rule, j, sig, th, *labels(scope))
            track.alert = replace(
                alert, severity=held, updated_at=iso(now), value=j.value, threshold=j.threshold,
                summary_zh=zh, summary_en=en, time_to_breach_s=sig.time_to_breach_s, current_value=j.value,
            )
            return track.alert
        if j.value is not None and j.value != alert.current_value:
            # The latest reading, for whoever reads the open alerts (the scorer's Prometheus export):
            # not a change to publish, or an open oldest_wait alert would be re-sent every tick.
            track.alert = replace(alert, current_value=j.value)
        return None

    @staticmethod
    def _fire(
        rule: Rule, scope: Scope, severity: Severity, j: Judgement, sig: Signals, th: Thresholds, now: int
    ) -> Alert:
        zh, en = firing_text(rule, j, sig, th, *labels(scope))
        return Alert(
            id=f"{rule}:{scope.queue}:{scope.tenant}:{scope.shop_id}:{scope.platform}:{now}",
            rule=rule, queue=scope.queue, tenant=scope.tenant, shop_id=scope.shop_id, platform=scope.platform,
            severity=severity, state="firing", started_at=iso(now), resolved_at=None, updated_at=iso(now),
            value=j.value, threshold=j.threshold, summary_zh=zh, summary_en=en,
            time_to_breach_s=sig.time_to_breach_s, current_value=j.value, group=alert_group(rule, scope),
        )

    @staticmethod
    def _resolve(alert: Alert, j: Judgement, sig: Signals | None, th: Thresholds, now: int) -> Alert:
        zh, en = resolved_text(alert.rule, j, th, *labels(alert.scope))
        return replace(
            alert, state="resolved", resolved_at=iso(now), updated_at=iso(now),
            value=j.value, threshold=j.threshold, summary_zh=zh, summary_en=en,
            time_to_breach_s=None if sig is None else sig.time_to_breach_s, current_value=j.value,
        )

    # --- persistence -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The engine's whole state as plain JSON (thresholds are configuration, not state)."""
        return {
            "version": _STATE_VERSION,
            "last_now_ms": self._last_now,
            # Scopes as stored since the first version: queue first.
            "first_seen": [[list(scope.queue_first()), ms]
                           for scope, ms in sorted(self._first_seen.items(), key=lambda item: item[0].queue_first())],
            "resolved": [[ms, alert_id] for ms, alert_id in self._resolved],
            "tracks": [
                {
                    "rule": rule, "scope": list(scope.queue_first()),
                    "warn_since": t.warn_since, "crit_since": t.crit_since, "clear_since": t.clear_since,
                    "last_seen": t.last_seen, "alert": None if t.alert is None else t.alert.to_json(),
                }
                for (rule, scope), t in self._tracks_in_order()
            ],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], rules: AlertRules | None = None) -> AlertEngine:
        """An engine continuing from `to_json()`'s state, judged with `rules`."""
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"alert engine state version {raw.get('version')!r}, expected {_STATE_VERSION}")
        engine = cls(rules)
        last = raw.get("last_now_ms")
        engine._last_now = None if last is None else int(last)
        engine._resolved = [(int(ms), str(alert_id)) for ms, alert_id in raw.get("resolved", [])]
        for scope, ms in raw.get("first_seen", []):
            engine._first_seen[Scope.from_queue_first(scope)] = int(ms)
        for t in raw.get("tracks", []):
            rule, scope = t["rule"], t["scope"]
            if rule not in RULES or not (isinstance(scope, list) and len(scope) == 4):
                raise ValueError(f"alert engine state: bad track {t!r}")
            alert = None if t.get("alert") is None else Alert.from_json(t["alert"])
            engine._tracks[(rule, Scope.from_queue_first(scope))] = _Track(
                warn_since=t.get("warn_since"), crit_since=t.get("crit_since"), clear_since=t.get("clear_since"),
                last_seen=int(t.get("last_seen", 0)), alert=alert,
            )
        return engine
