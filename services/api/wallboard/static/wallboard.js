/* Floorwatch wallboard: live queue tiles from GET /v1/stream (SSE), staffing from GET /v1/staffing,
 * colours from GET /v1/thresholds (the alert engine's own thresholds), firing alerts from
 * GET /v1/alerts?state=firing and `alerts` stream events. Plain JS, no build step, no network
 * beyond this API.
 *
 * Staleness: every `views` event carries the data's `as_of` and the server's clock (`server_time`),
 * so the data's age is measured on the server's clock (a TV with a wrong clock still tells the truth).
 * The board goes grey ("数据中断" / "STALE") when the stream is down, or when the newest as_of is
 * older than the server's `stale_after_s` (VIEW_STALE_AFTER_S, 10 s by default).
 */
(function () {
  'use strict';

  // ---- text ----------------------------------------------------------------------------------
  const I18N = {
    zh: {
      title: '客服实时看板', queue: '队列', shop: '店铺', platform: '平台',
      all_queues: '全部队列', all_shops: '全部店铺', all_platforms: '全部平台',
      awaiting: '等待中', unanswered: '未回复', oldest_wait: '最久等待', frt_p90: '首响 P90',
      reply_p90: '回复 P90', sl: '服务水平', available: '可接待客服', online: '在线客服',
      free_slots: '空闲接待位', staffing: '人力', required: '所需客服', vs_available: '可接待',
      drain: '{m} 分钟清空积压需', utilization: '负载率 ρ', within: '≤{s}秒',
      conn_live: '实时', conn_connecting: '连接中…', conn_offline: '连接中断',
      age: '数据 {n} 秒前', age_min: '数据 {n} 分钟前', age_none: '暂无数据',
      stale_title: '数据中断', stale_last: '最后数据 {age}前', stale_reconnecting: '正在重连…',
      stale_old: '数据超过 {s} 秒未更新', stale_never: '尚未收到数据',
      window_note: '窗口：近 5 分钟', nodata_note: '“—” 表示暂无数据',
      empty: '此筛选下暂无队列数据', waiting_data: '等待数据…',
      sev_critical: '严重', sev_warning: '警告', alerts_n: '{n} 条告警', alert_since: '已持续 {d}',
      tile_alerts: '告警 {n}', overload: '过载',
      legend: '颜色阈值（与告警一致）：最久等待 ≥{w} 黄 · ≥{c} 红 ｜ 服务水平 ≤{x}秒 目标 {t} ｜ 负载率 ρ ≥{rw} 黄 · ≥{rc} 红 ｜ 所需客服 > 在岗 黄',
      legend_mixed: '（各队列阈值不同，以首个队列为例）',
      legend_none: '告警阈值暂不可用：数字不着色',
      u_s: '秒', u_m: '分', u_h: '时', ago_s: '{n} 秒', ago_m: '{n} 分钟', lang_button: 'EN',
      on_duty: '在岗 {n}',
    },
    en: {
      title: 'Live service floor', queue: 'Queue', shop: 'Shop', platform: 'Platform',
      all_queues: 'All queues', all_shops: 'All shops', all_platforms: 'All platforms',
      awaiting: 'Waiting', unanswered: 'Unanswered', oldest_wait: 'Oldest wait', frt_p90: 'First reply P90',
      reply_p90: 'Reply P90', sl: 'SL', available: 'Available', online: 'online agents',
      free_slots: 'Free chat slots', staffing: 'Staffing', required: 'Needed', vs_available: 'Available',
      drain: 'To clear backlog in {m} min', utilization: 'Load ρ', within: '≤{s}s',
      conn_live: 'LIVE', conn_connecting: 'Connecting…', conn_offline: 'Disconnected',
      age: 'data {n} s ago', age_min: 'data {n} min ago', age_none: 'no data',
      stale_title: 'STALE', stale_last: 'last data {age} ago', stale_reconnecting: 'reconnecting…',
      stale_old: 'no update for over {s} s', stale_never: 'no data received yet',
      window_note: 'Window: last 5 min', nodata_note: '"—" means no data',
      empty: 'No queue figures for this filter', waiting_data: 'Waiting for data…',
      sev_critical: 'CRITICAL', sev_warning: 'WARNING', alerts_n: '{n} alerts firing', alert_since: 'for {d}',
      tile_alerts: '{n} ALERTS', overload: 'OVERLOAD',
      legend: 'Colours use the alert thresholds: oldest wait ≥{w} amber · ≥{c} red | service level ≤{x}s target {t} | load ρ ≥{rw} amber · ≥{rc} red | needed > on duty amber',
      legend_mixed: ' (queues differ; first queue shown)',
      legend_none: 'Alert thresholds unavailable: figures are not coloured',
      u_s: 's', u_m: 'm', u_h: 'h', ago_s: '{n} s', ago_m: '{n} min', lang_button: '中文',
      on_duty: '{n} on duty',
    },
  };
  const QUEUE_NAMES = { presales: ['售前', 'Presales'], aftersales: ['售后', 'After-sales'] };
  const PLATFORM_NAMES = {
    jd: ['京东', 'JD'], pdd: ['拼多多', 'Pinduoduo'], taobao: ['淘宝', 'Taobao'], tmall: ['天猫', 'Tmall'],
    douyin: ['抖音', 'Douyin'], web: ['官网', 'Web chat'],
  };
  const ND = '—';
  const LANG_KEY = 'floorwatch.wallboard.lang';
  const STAFFING_EVERY_MS = 10000;
  const ALERTS_EVERY_MS = 4000;
  const ALERTS_ABSENT_EVERY_MS = 30000;
  const THRESHOLDS_EVERY_MS = 60000;
  const SILENT_RECONNECT_MS = 45000;
  const DRAIN_MINUTES = 10;           // staffing's backlog_drain: agents to clear the backlog within this

  // ---- state ---------------------------------------------------------------------------------
  const params = new URLSearchParams(location.search);
  const state = {
    lang: pickLang(),
    filters: {
      queue: params.get('queue') || '',
      tenant: params.get('tenant') || '',
      shop_id: params.get('shop_id') || '',
      platform: params.get('platform') || '',
    },
    views: [],
    signals: {},             // queue → the alert rules' reading of its view (ρ, staffing gap, …)
    options: { queues: [], platforms: [], shops: [] },
    optionsKey: '',
    asOfMs: null,            // newest as_of of the scope, epoch ms (server clock)
    clockOffsetMs: 0,        // server clock − this machine's clock, from the last event
    staleAfterS: 10,
    conn: 'connecting',      // connecting | live | offline
    everData: false,
    lastEventAt: 0,
    staffing: new Map(),     // queue → {data, at}
    thresholds: new Map(),   // queue → Thresholds.to_json()
    thresholdsOk: false,
    thresholdsAt: 0,         // last request, so a build without thresholds is not asked twice a second
    alerts: new Map(),       // id → firing alert
    alertsOk: false,
  };
  let es = null;
  let reconnectTimer = null;
  let backoffMs = 1000;
  const tiles = new Map();   // queue → element

  function pickLang() {
    const fromUrl = params.get('lang');
    if (fromUrl === 'zh' || fromUrl === 'en') return fromUrl;
    try {
      const saved = localStorage.getItem(LANG_KEY);
      if (saved === 'zh' || saved === 'en') return saved;
    } catch (_) { /* storage blocked: default */ }
    return 'zh';
  }

  function t(key, vars) {
    let s = (I18N[state.lang] && I18N[state.lang][key]) || I18N.zh[key] || key;
    if (vars) for (const k of Object.keys(vars)) s = s.split('{' + k + '}').join(String(vars[k]));
    return s;
  }
  const L = (pair) => (state.lang === 'zh' ? pair[0] : pair[1]);
  const queueLabel = (q) => (QUEUE_NAMES[q] ? L(QUEUE_NAMES[q]) : q);
  const platformLabel = (p) => (PLATFORM_NAMES[p] ? L(PLATFORM_NAMES[p]) : p);

  // ---- formatting ("no data" is "—", never 0) ------------------------------------------------
  const isNum = (v) => typeof v === 'number' && isFinite(v);
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }
  const unit = (u) => '<span class="u">' + esc(u) + '</span>';
  function fmtCount(v) { return isNum(v) ? String(Math.round(v)) : ND; }
  // Durations: a clock (the oldest wait) is floored like a clock, 179.6 s is not yet "3 min" (the
  // critical level); a measured percentile is rounded to the nearest.
  function fmtDur(s, clock) {
    if (!isNum(s)) return ND;
    const round = clock ? Math.floor : Math.round;
    if (s < 10) return (round(s * 10) / 10).toFixed(1).replace(/\.0$/, '') + unit(t('u_s'));
    let n = round(s);
    if (n < 60) return n + unit(t('u_s'));
    const h = Math.floor(n / 3600); n -= h * 3600;
    const m = Math.floor(n / 60); const sec = n - m * 60;
    if (h > 0) return h + unit(t('u_h')) + String(m).padStart(2, '0') + unit(t('u_m'));
    return m + unit(t('u_m')) + String(sec).padStart(2, '0') + unit(t('u_s'));
  }
  function durText(s, clock) { return fmtDur(s, clock).replace(/<[^>]+>/g, ''); }
  // Percentages are floored, so a figure shown at the target really is at or above it.
  function fmtPct(v) { return isNum(v) ? Math.floor(v * 100 + 1e-9) + unit('%') : ND; }
  function pctText(v) { return isNum(v) ? Math.floor(v * 100 + 1e-9) + '%' : ND; }
  function ageText(s) {
    const n = Math.max(0, Math.floor(s));
    return n < 120 ? t('ago_s', { n }) : t('ago_m', { n: Math.floor(n / 60) });
  }

  // ---- colours from the alert thresholds -----------------------------------------------------
  const RANK = { none: 0, ok: 1, warn: 2, crit: 3 };
  const worst = (a, b) => (RANK[b] > RANK[a] ? b : a);
  function levelHighIsBad(v, warnAt, critAt) {
    if (!isNum(v)) return 'none';
    if (isNum(critAt) && v >= critAt) return 'crit';
    if (isNum(warnAt) && v >= warnAt) return 'warn';
    return 'ok';
  }
  function on(rule) { return rule && rule.enabled !== false ? rule : null; }

  // Judged as the alert rules judge (services/core/alert_rules.py): the thresholds from
  // /v1/thresholds, and for ρ and the staffing gap the rules' own reading of the view (`signals`).
  function judge(view, th, sig) {
    const out = { oldest: 'none', sl: 'none', rho: 'none', required: 'none', rhoValue: null, overload: false };
    const live = view.live || {};
    const w5 = (view.windows || {})['5m'] || {};
    if (sig) { out.rhoValue = isNum(sig.rho) ? sig.rho : null; out.overload = !isNum(sig.rho) && !!sig.overload; }
    if (!th) return out;
    const ow = on(th.oldest_wait);
    if (ow) {
      out.oldest = live.awaiting_reply === 0 ? 'ok' : levelHighIsBad(live.oldest_wait_s, ow.warning_s, ow.critical_s);
    }
    const sb = on(th.sla_breach);
    if (sb) {
      const sl = (w5.sl || {})[String(sb.threshold_s)];
      const left = w5.left_unanswered;
      // The alert judges only with enough conversations; with fewer the figure is shown uncoloured.
      if (isNum(sl) && isNum(left) && left >= (sb.min_conversations || 1)) out.sl = sl < sb.target ? 'warn' : 'ok';
    }
    const pl = on(th.peak_load);
    if (pl && sig) out.rho = out.overload ? 'crit' : levelHighIsBad(out.rhoValue, pl.rho_warning, pl.rho_critical);
    const sg = on(th.staffing_gap);
    if (sg && sig && isNum(sig.staffing_gap)) out.required = sig.staffing_gap > 0 ? 'warn' : 'ok';
    return out;
  }

  // ---- DOM -------------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const board = $('board');
  const template = $('tile-template');

  function applyStaticText() {
    document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
    document.title = 'Floorwatch · ' + t('title');
    for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    $('lang').textContent = t('lang_button');
    state.optionsKey = '';  // relabel the drop-downs
    renderOptions();
  }

  function setOptions(select, items, selected) {
    const first = select.options[0];
    select.textContent = '';
    select.appendChild(first);
    let found = selected === '';
    for (const [value, label] of items) {
      const o = document.createElement('option');
      o.value = value; o.textContent = label;
      if (value === selected) { o.selected = true; found = true; }
      select.appendChild(o);
    }
    if (!found) {  // a filter from the URL the data does not (yet) have: keep it, visibly
      const o = document.createElement('option');
      o.value = selected; o.textContent = selected.split('|').filter(Boolean).join(' · '); o.selected = true;
      select.appendChild(o);
    }
  }

  const shopValue = (s) => [s.tenant, s.shop_id, s.platform].map(encodeURIComponent).join('|');

  function renderOptions() {
    const key = state.lang + JSON.stringify(state.options) + JSON.stringify(state.filters);
    if (key === state.optionsKey) return;
    state.optionsKey = key;
    const f = state.filters;
    setOptions($('f-queue'), state.options.queues.map((q) => [q, queueLabel(q) === q ? q : queueLabel(q) + ' · ' + q]), f.queue);
    const shopSel = f.shop_id ? shopValue({ tenant: f.tenant, shop_id: f.shop_id, platform: f.platform }) : '';
    setOptions($('f-shop'), state.options.shops.map((s) => [shopValue(s), s.shop_id + ' · ' + platformLabel(s.platform)]), shopSel);
    setOptions($('f-platform'), state.options.platforms.map((p) => [p, platformLabel(p)]), f.platform);
  }

  function tileFor(queue) {
    let el = tiles.get(queue);
    if (!el) {
      el = template.content.firstElementChild.cloneNode(true);
      el.dataset.queue = queue;
      el.k = {};
      for (const n of el.querySelectorAll('[data-k]')) el.k[n.dataset.k] = n;
      for (const n of el.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
      tiles.set(queue, el);
    }
    return el;
  }

  function setV(el, html, level) {
    if (el.__html !== html) { el.innerHTML = html; el.__html = html; toFit.add(el.closest('.v') || el); }
    el.classList.toggle('nd', html === ND);
    for (const c of ['ok', 'warn', 'crit']) el.classList.toggle(c, level === c);
  }

  function visibleViews() {
    const q = state.filters.queue;
    return q ? state.views.filter((v) => v.queue === q) : state.views;
  }

  function alertsFor(queue) {
    const f = state.filters;
    const scope = [f.tenant || '*', f.shop_id || '*', f.platform || '*'];
    const out = [];
    for (const a of state.alerts.values()) {
      if (a.state !== 'firing') continue;
      if (queue !== undefined && a.queue !== queue) continue;
      if (f.queue && a.queue !== f.queue) continue;
      // The alert of the scope the board shows (the roll-up, or the one shop), not its siblings.
      const shop = a.shop_id || '*';
      if (f.shop_id) { if (shop !== f.shop_id || (f.platform && a.platform !== f.platform)) continue; }
      else if ((a.tenant || '*') !== scope[0] || shop !== '*' || (a.platform || '*') !== scope[2]) continue;
      out.push(a);
    }
    out.sort((a, b) => (a.severity === b.severity ? String(a.started_at).localeCompare(String(b.started_at))
      : a.severity === 'critical' ? -1 : 1));
    return out;
  }

  function serverNow() { return Date.now() + state.clockOffsetMs; }

  function renderTile(view) {
    const el = tileFor(view.queue);
    const k = el.k;
    const live = view.live || {};
    const w5 = (view.windows || {})['5m'] || {};
    const th = state.thresholds.get(view.queue) || null;
    const staffEntry = state.staffing.get(view.queue);
    // No answer ("—") rather than an old one once the staffing calls have failed for a while.
    const staff = staffEntry && staffEntry.data && Date.now() - staffEntry.at < 3.5 * STAFFING_EVERY_MS
      ? staffEntry.data : null;
    const j = judge(view, th, state.signals[view.queue] || null);

    k.label.textContent = queueLabel(view.queue);
    k.qid.textContent = queueLabel(view.queue) === view.queue ? '' : view.queue;

    setV(k.awaiting, fmtCount(live.awaiting_reply), 'none');
    setV(k.unanswered, fmtCount(live.unanswered), 'none');
    setV(k.oldest, fmtDur(live.oldest_wait_s, true), j.oldest === 'none' ? 'none' : isNum(live.oldest_wait_s) ? j.oldest : 'none');
    setV(k.frt, fmtDur((w5.frt || {}).p90_s), 'none');
    setV(k.reply, fmtDur((w5.reply || {}).p90_s), 'none');
    const sl = w5.sl || {};
    const slAt = th && on(th.sla_breach) ? String(th.sla_breach.threshold_s) : null;
    setV(k.sl30, fmtPct(sl['30']), slAt === '30' ? j.sl : 'none');
    setV(k.sl180, fmtPct(sl['180']), slAt === '180' ? j.sl : 'none');
    k.sl30_lbl.textContent = t('within', { s: 30 });
    k.sl180_lbl.textContent = t('within', { s: 180 });
    setV(k.available, fmtCount(live.agents_available), 'none');
    setV(k.online, fmtCount(live.agents_online), 'none');
    const free = isNum(live.slots_capacity) && isNum(live.slots_active) ? live.slots_capacity - live.slots_active : null;
    setV(k.free, fmtCount(free), 'none');

    // Staffing: GET /v1/staffing; "available" from the view when the view has no agent data
    // (the staffing endpoint counts unknown agents as 0).
    k.drain_lbl.textContent = t('drain', { m: DRAIN_MINUTES });
    setV(k.required, staff ? fmtCount(staff.required_agents) : ND, j.required);
    // The staffing alert compares "needed" with the agents on duty (online or busy): say so beside it.
    const sig = state.signals[view.queue] || {};
    k.serving_lbl.textContent = isNum(sig.agents_staffing) ? t('on_duty', { n: sig.agents_staffing }) : '';
    // "Available" is the staffing call's input (inputs.agents_available), shown from the view it came
    // from: the same figure, but as fresh as the rest of the tile (the staffing call runs every 10 s)
    // and "—" rather than 0 when the view has no agent data.
    setV(k.staff_available, staff ? fmtCount(live.agents_available) : ND, 'none');
    setV(k.drain, staff ? fmtCount((staff.backlog_drain || {}).agents) : ND, 'none');
    setV(k.rho, j.overload ? esc(t('overload')) : fmtPct(j.rhoValue), j.rho);

    // Tile state: its own age, its worst colour, its firing alerts.
    const asOf = Date.parse(view.as_of);
    const age = isNum(asOf) ? (serverNow() - asOf) / 1000 : null;
    const tileStale = age === null || age > state.staleAfterS;
    el.classList.toggle('stale', tileStale && !document.body.classList.contains('stale'));
    k.tile_age.textContent = tileStale && age !== null ? t('age', { n: Math.floor(age) }) : '';
    const firing = alertsFor(view.queue);
    let level = [j.oldest, j.sl, j.rho, j.required].reduce(worst, 'none');
    if (firing.length) level = worst(level, firing[0].severity === 'critical' ? 'crit' : 'warn');
    for (const c of ['s-ok', 's-warn', 's-crit']) el.classList.toggle(c, level !== 'none' && c === 's-' + level);
    el.classList.toggle('alerting', firing.length > 0);
    k.flag.textContent = firing.length ? t('tile_alerts', { n: firing.length }) : '';
    k.flag.className = 'tile-flag' + (firing.length ? (firing[0].severity === 'critical' ? ' crit' : ' warn') : '');
    return el;
  }

  // Big numbers shrink to fit their cell rather than spill into the next one. Batched: all the
  // writes, then all the reads (one layout), then the writes again; measuring one number at a
  // time would force a layout of the whole board per number.
  const toFit = new Set();
  function flushFit() {
    if (!toFit.size) return;
    const boxes = [...toFit].filter((b) => b.isConnected);
    toFit.clear();
    for (const b of boxes) b.style.fontSize = '';
    const sizes = boxes.map((b) => {
      const sw = b.scrollWidth; const cw = b.clientWidth;
      return sw - cw > 1 && cw > 0 ? Math.floor(parseFloat(getComputedStyle(b).fontSize) * cw / sw) : 0;
    });
    boxes.forEach((b, i) => { if (sizes[i]) b.style.fontSize = sizes[i] + 'px'; });
  }
  function refit() { for (const el of board.querySelectorAll('.v')) toFit.add(el); flushFit(); }

  function layout(n) {
    const wide = window.innerWidth >= 1100;
    let cols = 1;
    if (wide) cols = n <= 3 ? Math.max(1, n) : n === 4 ? 2 : n <= 6 ? 3 : 4;
    board.style.setProperty('--cols', String(cols));
    board.style.setProperty('--min-row', n > cols * 2 ? '340px' : '0px');
  }

  function renderBoard() {
    const views = visibleViews();
    const seen = new Set();
    let prev = null;
    for (const v of views) {
      const el = renderTile(v);
      seen.add(v.queue);
      const want = prev ? prev.nextSibling : board.firstChild;
      if (want !== el) board.insertBefore(el, want);
      prev = el;
    }
    for (const [q, el] of tiles) {
      if (!seen.has(q)) { el.remove(); tiles.delete(q); }
    }
    const empty = $('empty');
    empty.hidden = views.length > 0;
    empty.textContent = state.everData ? t('empty') : t('waiting_data');
    if (board.dataset.n !== String(views.length)) {
      board.dataset.n = String(views.length);
      layout(views.length);
      refit();
    }
    flushFit();
  }

  function renderAlerts() {
    const box = $('alerts');
    const list = state.alertsOk ? alertsFor(undefined) : [];  // no /v1/alerts (404): no banner
    if (!list.length) { box.hidden = true; box.textContent = ''; return; }
    const now = serverNow();
    const items = list.map((a) => {
      const since = Date.parse(a.started_at);
      const d = isNum(since) ? durText(Math.max(0, (now - since) / 1000), true) : '';
      const summary = state.lang === 'zh' ? (a.summary_zh || a.summary_en) : (a.summary_en || a.summary_zh);
      return '<span class="alert ' + esc(a.severity) + '" data-testid="alert" data-rule="' + esc(a.rule) +
        '" data-queue="' + esc(a.queue) + '" data-severity="' + esc(a.severity) + '">' +
        '<span class="sev">' + esc(t(a.severity === 'critical' ? 'sev_critical' : 'sev_warning')) + '</span>' +
        '<span class="text">' + esc(summary || a.rule) + '</span>' +
        (d ? '<span class="since">' + esc(t('alert_since', { d })) + '</span>' : '') + '</span>';
    });
    box.innerHTML = '<span class="alerts-count">⚠ ' + esc(t('alerts_n', { n: list.length })) + '</span>' +
      '<span class="alerts-list">' + items.join('') + '</span>';
    box.classList.toggle('warning-only', list.every((a) => a.severity !== 'critical'));
    box.hidden = false;
  }

  function renderLegend() {
    const el = $('legend');
    const views = visibleViews();
    const ths = views.map((v) => state.thresholds.get(v.queue)).filter(Boolean);
    if (!ths.length) { el.textContent = state.thresholdsOk || !views.length ? '' : t('legend_none'); return; }
    const th = ths[0];
    const mixed = ths.some((x) => JSON.stringify(x) !== JSON.stringify(th));
    el.textContent = t('legend', {
      w: durText(th.oldest_wait.warning_s), c: durText(th.oldest_wait.critical_s),
      x: th.sla_breach.threshold_s, t: pctText(th.sla_breach.target),
      rw: pctText(th.peak_load.rho_warning), rc: pctText(th.peak_load.rho_critical),
    }) + (mixed ? t('legend_mixed') : '');
  }

  // Status, age and staleness: re-evaluated every second, events or not.
  function renderStatus() {
    const body = document.body;
    const age = state.asOfMs === null ? null : (serverNow() - state.asOfMs) / 1000;
    const stale = state.conn !== 'live' ? state.conn === 'offline' || state.everData : age !== null && age > state.staleAfterS;
    body.classList.toggle('live', state.conn === 'live' && !stale);
    body.classList.toggle('offline', state.conn === 'offline');
    body.classList.toggle('connecting', state.conn === 'connecting' && !state.everData);
    body.classList.toggle('stale', stale);
    $('conn-text').textContent = stale && state.conn === 'live' ? t('stale_title')
      : t(state.conn === 'live' ? 'conn_live' : state.conn === 'offline' ? 'conn_offline' : 'conn_connecting');
    const ageEl = $('age');
    ageEl.textContent = age === null ? t('age_none')
      : age < 120 ? t('age', { n: Math.max(0, Math.floor(age)) }) : t('age_min', { n: Math.floor(age / 60) });
    ageEl.dataset.ageS = age === null ? '' : String(Math.max(0, Math.floor(age)));
    const banner = $('stale');
    banner.hidden = !stale;
    if (stale) {
      const parts = [];
      if (age !== null) parts.push(t('stale_last', { age: ageText(age) }));
      else parts.push(t('stale_never'));
      if (state.conn === 'live' && age !== null) parts.push(t('stale_old', { s: state.staleAfterS }));
      if (state.conn !== 'live') parts.push(t('stale_reconnecting'));
      $('stale-detail').textContent = parts.join(' · ');
    }
    const now = new Date();
    $('clock').textContent = [now.getHours(), now.getMinutes(), now.getSeconds()].map((x) => String(x).padStart(2, '0')).join(':');
  }

  function renderAll() {
    renderOptions();
    renderBoard();
    renderAlerts();
    renderLegend();
    renderStatus();
  }

  // ---- the stream ------------------------------------------------------------------------------
  function scopeQuery(extra) {
    const q = new URLSearchParams();
    const f = state.filters;
    if (f.tenant) q.set('tenant', f.tenant);
    if (f.shop_id) q.set('shop_id', f.shop_id);
    if (f.platform) q.set('platform', f.platform);
    if (extra) for (const [k, v] of Object.entries(extra)) q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (es) es.close();
    state.conn = state.everData ? 'offline' : 'connecting';
    es = new EventSource('/v1/stream' + scopeQuery());
    es.addEventListener('views', onViews);
    es.addEventListener('alerts', onAlertsEvent);
    es.onerror = () => {
      state.conn = 'offline';
      renderStatus();
      // CONNECTING: the browser retries by itself; CLOSED (an HTTP error): we retry, backing off.
      if (es.readyState === EventSource.CLOSED) scheduleReconnect();
    };
    renderStatus();
  }

  function scheduleReconnect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 15000);
  }

  function onViews(e) {
    let data;
    try { data = JSON.parse(e.data); } catch (_) { return; }
    const received = Date.now();
    const serverTime = Date.parse(data.server_time);
    if (isNum(serverTime)) state.clockOffsetMs = serverTime - received;
    if (isNum(data.stale_after_s)) state.staleAfterS = data.stale_after_s;
    const asOf = data.as_of ? Date.parse(data.as_of) : NaN;
    state.asOfMs = isNum(asOf) ? asOf : null;
    state.views = Array.isArray(data.queues) ? data.queues : [];
    state.signals = data.signals || {};
    if (data.options) state.options = data.options;
    state.conn = 'live';
    state.everData = true;
    state.lastEventAt = performance.now();
    backoffMs = 1000;
    const missing = visibleViews().some((v) => !state.staffing.has(v.queue));
    if (missing) refreshStaffing();
    const noThresholds = visibleViews().some((v) => !state.thresholds.has(v.queue));
    if (noThresholds && Date.now() - state.thresholdsAt > 10000) refreshThresholds();
    renderAll();
  }

  function onAlertsEvent(e) {
    let data;
    try { data = JSON.parse(e.data); } catch (_) { return; }
    for (const a of data.alerts || []) {
      if (!a || !a.id || !state.alertsOk) continue;
      if (a.state === 'firing') state.alerts.set(a.id, a); else state.alerts.delete(a.id);
    }
    state.lastEventAt = performance.now();
    renderBoard();
    renderAlerts();
  }

  // ---- polling: staffing, thresholds, alerts ---------------------------------------------------
  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    return { status: r.status, body: r.ok ? await r.json() : null };
  }

  let staffingBusy = false;
  async function refreshStaffing() {
    if (staffingBusy) return;
    staffingBusy = true;
    try {
      await Promise.all(visibleViews().map(async (v) => {
        const extra = { queue: v.queue, drain_minutes: DRAIN_MINUTES };
        const th = state.thresholds.get(v.queue);
        const sg = th && th.staffing_gap;
        if (sg) {  // the staffing alert's own targets, so the tile and the alert agree
          extra.sl_target = sg.sl_target; extra.sl_seconds = sg.sl_seconds; extra.max_occupancy = sg.max_occupancy;
        }
        try {
          const { status, body } = await getJSON('/v1/staffing' + scopeQuery(extra));
          if (status === 200) state.staffing.set(v.queue, { data: body, at: Date.now() });
          else if (status === 404 || status === 422) state.staffing.set(v.queue, { data: null, at: Date.now() });
        } catch (_) { /* network: keep the last answer until it ages out */ }
      }));
    } finally {
      staffingBusy = false;
    }
    renderBoard();
  }

  async function refreshThresholds() {
    const queues = [...new Set(visibleViews().map((v) => v.queue))];
    if (!queues.length) return;
    state.thresholdsAt = Date.now();
    const q = new URLSearchParams();
    for (const name of queues) q.append('queue', name);
    try {
      const { status, body } = await getJSON('/v1/thresholds?' + q.toString());
      state.thresholdsOk = status === 200;
      if (status === 200 && body && body.queues) {
        for (const [name, th] of Object.entries(body.queues)) state.thresholds.set(name, th);
      } else if (status === 404) {
        state.thresholds.clear();
      }
    } catch (_) { /* keep what we have */ }
    renderBoard();
    renderLegend();
  }

  let alertsTimer = null;
  async function pollAlerts() {
    clearTimeout(alertsTimer);
    let next = ALERTS_EVERY_MS;
    try {
      const { status, body } = await getJSON('/v1/alerts?state=firing');
      if (status === 200 && body && Array.isArray(body.alerts)) {
        state.alertsOk = true;
        state.alerts = new Map(body.alerts.filter((a) => a && a.id && a.state === 'firing').map((a) => [a.id, a]));
      } else if (status === 404) {  // no alert endpoint on this API: no banner
        state.alertsOk = false;
        state.alerts.clear();
        next = ALERTS_ABSENT_EVERY_MS;
      }
    } catch (_) { /* offline: the stale banner says so; keep the last alerts */ }
    renderBoard();
    renderAlerts();
    alertsTimer = setTimeout(pollAlerts, next);
  }

  // ---- filters and language ----------------------------------------------------------------------
  function filtersChanged() {
    const q = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(state.filters)) { if (v) q.set(k, v); else q.delete(k); }
    const s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
    state.staffing.clear();
    state.views = [];
    state.asOfMs = null;
    state.everData = false;
    for (const el of tiles.values()) el.remove();
    tiles.clear();
    connect();
    renderAll();
  }

  $('f-queue').addEventListener('change', (e) => {
    state.filters.queue = e.target.value;
    // The queue filter is applied here (the stream sends every queue of the scope).
    renderAll();
    const q = new URLSearchParams(location.search);
    if (state.filters.queue) q.set('queue', state.filters.queue); else q.delete('queue');
    const s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
    refreshStaffing();
    refreshThresholds();
  });
  $('f-shop').addEventListener('change', (e) => {
    const f = state.filters;
    if (!e.target.value) { f.shop_id = ''; f.tenant = params.get('tenant') || ''; }
    else {
      const [tenant, shop, platform] = e.target.value.split('|').map(decodeURIComponent);
      f.tenant = tenant; f.shop_id = shop; f.platform = platform;
    }
    filtersChanged();
  });
  $('f-platform').addEventListener('change', (e) => {
    const f = state.filters;
    f.platform = e.target.value;
    if (f.shop_id) { f.shop_id = ''; f.tenant = params.get('tenant') || ''; }
    filtersChanged();
  });
  $('lang').addEventListener('click', () => {
    state.lang = state.lang === 'zh' ? 'en' : 'zh';
    try { localStorage.setItem(LANG_KEY, state.lang); } catch (_) { /* not remembered */ }
    for (const el of tiles.values()) for (const n of el.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
    applyStaticText();
    renderAll();
  });
  window.addEventListener('resize', () => { layout(visibleViews().length); refit(); });

  // ---- start -------------------------------------------------------------------------------------
  applyStaticText();
  connect();
  renderAll();
  pollAlerts();
  setInterval(() => {
    // A stream that has delivered nothing for a long while (a half-open connection): start again.
    if (state.conn === 'live' && performance.now() - state.lastEventAt > SILENT_RECONNECT_MS) connect();
    renderStatus();
    renderBoard();
    renderAlerts();
  }, 1000);
  setInterval(refreshStaffing, STAFFING_EVERY_MS);
  setInterval(refreshThresholds, THRESHOLDS_EVERY_MS);
}());
