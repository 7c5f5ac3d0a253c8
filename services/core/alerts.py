"""Alert episodes from the rules' verdicts (shared/METRICS.md, "Alerts").

Pure: no I/O, no clock. Time comes in as epoch milliseconds. The thresholds, the inputs (`Signals`,
from one queue view by `signals_from_view`) and the per-reading verdicts (`judge`) live in
`alert_rules`; this module adds time: `AlertEngine.evaluate(signals_by_scope, now_ms)` judges every
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

from .alert_rules import (
    RULES,
    AlertRules,
    Judgement,
    Rule,
    ScopeKey,
    Severity,
    Signals,
    Thresholds,
    alert_group,
    judge,
)
from .merge import ALL, iso

__all__ = ["Alert", "AlertEngine"]

AlertState = Literal["firing", "resolved"]
_RANK: Final[dict[str, int]] = {"warning": 1, "critical": 2}
_STATE_VERSION: Final = 1


# ---------------------------------------------------------------------------------------------
# Human sentences

QUEUE_NAMES_ZH: Final[Mapping[str, str]] = {"presales": "售前", "aftersales": "售后"}
PLATFORM_NAMES: Final[Mapping[str, tuple[str, str]]] = {
    "jd": ("京东", "JD"), "pdd": ("拼多多", "Pinduoduo"), "taobao": ("淘宝", "Taobao"),
    "tmall": ("天猫", "Tmall"), "douyin": ("抖音", "Douyin"),
}


def _labels(scope: ScopeKey) -> tuple[str, str]:
    queue, tenant, shop, platform = scope
    zh, en = (f"{QUEUE_NAMES_ZH.get(queue, queue)}队列", queue) if queue != ALL else ("店铺", "shop")
    parts = [(x, x) for x in (tenant, shop) if x != ALL]
    if platform != ALL:
        parts.append(PLATFORM_NAMES.get(platform, (platform, platform)))
    if parts:
        zh += "（" + " / ".join(z for z, _ in parts) + "）"
        en += " (" + ", ".join(e for _, e in parts) + ")"
    return zh, en


def _n(x: float | None, spec: str = ".0f") -> str:
    return "?" if x is None else format(x, spec)


def _firing_text(rule: Rule, j: Judgement, s: Signals, th: Thresholds, zh: str, en: str) -> tuple[str, str]:
    v, t = j.value, j.threshold
    if rule == "platform_budget":
        total = _n(s.budget_total, "d")
        if j.reason == "gone":
            return (
                f"{zh}今日平台考核已无可失误余量（剩余 {_n(v)} / {total}）",
                f"{en}: today's platform rule budget is gone ({_n(v)} of {total} misses left)",
            )
        return (
            f"{zh}今日平台考核可失误余量仅剩 {_n(v)} / {total}（低于 {_n(th.platform_budget.warning_share, '.0%')}）",
            f"{en}: only {_n(v)} of {total} misses left in today's platform rule budget "
            f"(under {_n(th.platform_budget.warning_share, '.0%')})",
        )
    if rule == "oldest_wait":
        verb = "超过" if v is not None and t is not None and v > t else "达到"
        out_zh = f"{zh}最久等待 {_n(v)} 秒，{verb} {_n(t, 'g')} 秒"
        out_en = f"{en}: oldest buyer has waited {_n(v)} s (limit {_n(t, 'g')} s)"
        if s.time_to_breach_s is not None:
            lim = _n(s.reply_limit_s, "g")
            if s.time_to_breach_s <= 0:
                out_zh += f"，已超出平台 {lim} 秒回复时限"
                out_en += f"; platform reply limit {lim} s broken"
            else:
                out_zh += f"，距平台 {lim} 秒回复时限还剩 {_n(s.time_to_breach_s)} 秒"
                out_en += f"; platform reply limit {lim} s broken in {_n(s.time_to_breach_s)} s"
        return out_zh, out_en
    if rule == "peak_load":
        apm, aht = _n(s.arrivals_per_min_15m, ".1f"), _n(s.aht_s)
        if j.reason == "overload":
            return (
                f"{zh}有进线（{apm} 条/分）但没有在线坐席并发位",
                f"{en}: chats arriving ({apm}/min) but no agent slots online",
            )
        if j.reason == "surge":
            r5 = _n(s.rate_5m_per_min, ".1f")
            return (
                f"{zh}近 5 分钟进线 {r5} 条/分，是近 1 小时平均的 {_n(v, '.1f')} 倍（阈值 {_n(t, 'g')} 倍）",
                f"{en}: arrivals surged to {r5}/min over 5 min, {_n(v, '.1f')}× the 1 h rate (limit {_n(t, 'g')}×)",
            )
        return (
            f"{zh}负载率 ρ={_n(v, '.2f')}，达到 {_n(t, 'g')}"
            f"（进线 {apm} 条/分 × 处理时长 {aht} 秒，{_n(s.slots, 'd')} 个并发位）",
            f"{en}: load ρ = {_n(v, '.2f')} of chat slots (limit {_n(t, 'g')}; {apm} chats/min × AHT {aht} s "
            f"over {_n(s.slots, 'd')} slots)",
        )
    if rule == "sla_breach":
        x, n = th.sla_breach.threshold_s, _n(s.sl_5m_left, "d")
        return (
            f"{zh} 5 分钟服务水平 {_n(v, '.0%')}（{x} 秒内应答），低于目标 {_n(t, '.0%')}（{n} 个会话）",
            f"{en}: 5 min service level {_n(v, '.0%')} answered within {x} s (target {_n(t, '.0%')}, {n} chats)",
        )
    g = th.staffing_gap
    gap = None if v is None or t is None else v - t
    return (
        f"{zh}需要 {_n(v)} 名坐席（{_n(g.sl_seconds, 'g')} 秒内应答 {_n(g.sl_target, '.0%')}），"
        f"当前在岗 {_n(t)} 名，缺 {_n(gap)} 名",
        f"{en}: {_n(v)} agents needed ({_n(g.sl_target, '.0%')} within {_n(g.sl_seconds, 'g')} s), "
        f"{_n(t)} on duty: {_n(gap)} short",
    )


def _resolved_text(rule: Rule, j: Judgement, th: Thresholds, zh: str, en: str) -> tuple[str, str]:
    v, t = j.value, j.threshold
    if j.reason == "absent":
        secs = _n(th.clear_ms(rule) / 1000, "g")
        return f"{zh} {secs} 秒无数据，告警解除", f"{en}: no data for {secs} s; alert resolved"
    if j.reason == "disabled":
        return f"{zh}的 {rule} 规则已停用，告警解除", f"{en}: rule {rule} disabled; alert resolved"
    if rule == "platform_budget":
        return (
            f"{zh}今日平台考核余量回到 {_n(v)} 次",
            f"{en}: today's platform rule budget back at {_n(v)} misses left",
        )
    if rule == "oldest_wait":
        if j.reason == "nobody":
            return f"{zh}已无等待中的买家", f"{en}: no buyer is waiting any more"
        return (
            f"{zh}最久等待已低于 {_n(t, 'g')} 秒（现 {_n(v)} 秒）",
            f"{en}: oldest wait back below {_n(t, 'g')} s (now {_n(v)} s)",
        )
    if rule == "peak_load":
        if j.reason == "idle":
            return f"{zh}已无进线负载", f"{en}: no load any more"
        return (
            f"{zh}负载已回落到 ρ {_n(t, 'g')} 以下（现 {_n(v, '.2f')}）",
            f"{en}: load back below ρ {_n(t, 'g')} (now {_n(v, '.2f')})",
        )
    if rule == "sla_breach":
        if j.reason == "quiet":
            return (
                f"{zh}已无未应答会话，服务水平不再低于目标",
                f"{en}: no unanswered chats; service level no longer below target",
            )
        return (
            f"{zh} 5 分钟服务水平回到 {_n(v, '.0%')}（目标 {_n(t, '.0%')}）",
            f"{en}: 5 min service level back at {_n(v, '.0%')} (target {_n(t, '.0%')})",
        )
    if v == 0:
        return f"{zh}已无进线负载，人手缺口已补齐", f"{en}: no load any more; staffing gap closed"
    return (
        f"{zh}人手缺口已补齐（需要 {_n(v)} 名，在岗 {_n(t)} 名）",
        f"{en}: staffing gap closed ({_n(v)} needed, {_n(t)} on duty)",
    )


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
    # The roll-up it is grouped under (`alert_rules.alert_group`): a queue's alert across shops and
    # its shops' alerts of the same rule share it, and page as one notification.
    group: str | None = None

    @property
    def scope(self) -> ScopeKey:
        return (self.queue, self.tenant, self.shop_id, self.platform)

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


_TrackKey = tuple[Rule, ScopeKey]


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
        self._first_seen: dict[ScopeKey, int] = {}

    def open_alerts(self) -> list[Alert]:
        """The firing alerts, as last published."""
        return [t.alert for _, t in sorted(self._tracks.items()) if t.alert is not None]

    def evaluate(self, signals: Mapping[ScopeKey, Signals], now_ms: int) -> list[Alert]:
        """Judge every rule for every scope at `now_ms`; the changes, in scope then rule order."""
        if isinstance(now_ms, bool) or not isinstance(now_ms, int):
            raise TypeError(f"now_ms must be epoch milliseconds (int), got {now_ms!r}")
        if self._last_now is not None and now_ms <= self._last_now:
            return []
        self._last_now = now_ms
        out: list[Alert] = []
        for scope in sorted(signals):
            sig, th = signals[scope], self.rules.thresholds_for(scope[0])
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
        for key in sorted(k for k in self._tracks if k[1] not in signals):
            track, th = self._tracks[key], self.rules.thresholds_for(key[1][0])
            if now_ms - track.last_seen >= th.clear_ms(key[0]):
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
            zh, en = _firing_text(rule, j, sig, th, *_labels(scope))
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
        rule: Rule, scope: ScopeKey, severity: Severity, j: Judgement, sig: Signals, th: Thresholds, now: int
    ) -> Alert:
        queue, tenant, shop, platform = scope
        zh, en = _firing_text(rule, j, sig, th, *_labels(scope))
        return Alert(
            id=f"{rule}:{queue}:{tenant}:{shop}:{platform}:{now}",
            rule=rule, queue=queue, tenant=tenant, shop_id=shop, platform=platform,
            severity=severity, state="firing", started_at=iso(now), resolved_at=None, updated_at=iso(now),
            value=j.value, threshold=j.threshold, summary_zh=zh, summary_en=en,
            time_to_breach_s=sig.time_to_breach_s, current_value=j.value, group=alert_group(rule, scope),
        )

    @staticmethod
    def _resolve(alert: Alert, j: Judgement, sig: Signals | None, th: Thresholds, now: int) -> Alert:
        zh, en = _resolved_text(alert.rule, j, th, *_labels(alert.scope))
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
            "first_seen": [[list(scope), ms] for scope, ms in sorted(self._first_seen.items())],
            "resolved": [[ms, alert_id] for ms, alert_id in self._resolved],
            "tracks": [
                {
                    "rule": rule, "scope": list(scope),
                    "warn_since": t.warn_since, "crit_since": t.crit_since, "clear_since": t.clear_since,
                    "last_seen": t.last_seen, "alert": None if t.alert is None else t.alert.to_json(),
                }
                for (rule, scope), t in sorted(self._tracks.items())
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
            engine._first_seen[(str(scope[0]), str(scope[1]), str(scope[2]), str(scope[3]))] = int(ms)
        for t in raw.get("tracks", []):
            rule, scope = t["rule"], t["scope"]
            if rule not in RULES or not (isinstance(scope, list) and len(scope) == 4):
                raise ValueError(f"alert engine state: bad track {t!r}")
            alert = None if t.get("alert") is None else Alert.from_json(t["alert"])
            engine._tracks[(rule, (str(scope[0]), str(scope[1]), str(scope[2]), str(scope[3])))] = _Track(
                warn_since=t.get("warn_since"), crit_since=t.get("crit_since"), clear_since=t.get("clear_since"),
                last_seen=int(t.get("last_seen", 0)), alert=alert,
            )
        return engine
