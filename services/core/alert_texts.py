"""The alerts' sentences in Chinese and English (zh first: the floor's language), apart from the rules
and the engine so wording changes touch nothing else. `labels(scope)` names a scope; `firing_text` and
`resolved_text` say what a verdict means, with the figures that made it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .alert_config import Rule, Thresholds
from .alert_judging import Judgement
from .alert_signals import Signals
from .scope import ALL, Scope

QUEUE_NAMES_ZH: Final[Mapping[str, str]] = {"presales": "售前", "aftersales": "售后"}
PLATFORM_NAMES: Final[Mapping[str, tuple[str, str]]] = {
    "jd": ("京东", "JD"), "pdd": ("拼多多", "Pinduoduo"), "taobao": ("淘宝", "Taobao"),
    "tmall": ("天猫", "Tmall"), "douyin": ("抖音", "Douyin"),
}


def labels(scope: Scope) -> tuple[str, str]:
    queue, platform = scope.queue, scope.platform
    zh, en = (f"{QUEUE_NAMES_ZH.get(queue, queue)}队列", queue) if queue != ALL else ("店铺", "shop")
    parts = [(x, x) for x in (scope.tenant, scope.shop_id) if x != ALL]
    if platform != ALL:
        parts.append(PLATFORM_NAMES.get(platform, (platform, platform)))
    if parts:
        zh += "（" + " / ".join(z for z, _ in parts) + "）"
        en += " (" + ", ".join(e for _, e in parts) + ")"
    return zh, en


def _n(x: float | None, spec: str = ".0f") -> str:
    return "?" if x is None else format(x, spec)


def firing_text(rule: Rule, j: Judgement, s: Signals, th: Thresholds, zh: str, en: str) -> tuple[str, str]:
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


def resolved_text(rule: Rule, j: Judgement, th: Thresholds, zh: str, en: str) -> tuple[str, str]:
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
