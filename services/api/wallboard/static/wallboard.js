/* Floorwatch wallboard: live queue tiles from GET /v1/stream (SSE), staffing from GET /v1/staffing,
 * colours from GET /v1/thresholds (the alert engine's own thresholds), firing alerts from
 * GET /v1/alerts?state=firing and `alerts` stream events. Plain JS, no build step, no network
 * beyond this API.
 *
 * A floor of any size fits one screen without scrolling (docs/wallboard.md): up to TILE_MAX queues
 * as full tiles, more as one dense row per queue, in as many columns as fit at the minimum type
 * size; what does not fit is paged, and the pages rotate on a visible timer. Queues idle for the last
 * hour fold into one "quiet" line. Queues are ordered by urgency (severity, then oldest wait) with
 * hysteresis, so rows do not jump every second. Alerts show as a summary: counts by severity and the
 * three most urgent with their current value; the full list is a page of its own (key A).
 * Saved boards: `?queues=a,b,jd-*` or `?group=presales` (filtered by the stream, GET /v1/stream).
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
      budget_title: '今日平台考核还可超时', budget_left: '{n} 次',
      u_s: '秒', u_m: '分', u_h: '时', ago_s: '{n} 秒', ago_m: '{n} 分钟', lang_button: 'EN',
      on_duty: '在岗 {n}',
      h_queue: '队列', h_waiting: '等待', h_oldest: '最久等待', h_sl: '服务水平 ≤{s}秒', h_sl_any: '服务水平',
      h_available: '空闲', h_on_duty: '在岗', h_needed: '需要', h_alerts: '⚠',
      quiet: '静默 {n} 个队列（近 1 小时无活动）', page: '{i}/{n}', page_alerts: '告警 {i}/{n}',
      paused: '已暂停', more_alerts: '+{n} 条', all_alerts: '全部告警 (A)',
      sev_n_critical: '严重', sev_n_warning: '警告', now: '现', at_firing: '触发时', open_for: '已 {d}',
      r_oldest_wait: '最久等待', r_peak_load: '负载', r_sla_breach: '服务水平', r_staffing_gap: '人手缺口',
      needed_n: '需 {n} 人', on_duty_n: '在岗 {n}', h_sev: '级别', h_rule: '规则', h_now: '现值', h_fired: '触发值',
      h_threshold: '阈值', h_open: '持续', keys_hint: '← → 翻页 · 空格 暂停 · A 告警',
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
      budget_title: 'Platform misses left today', budget_left: '{n}',
      u_s: 's', u_m: 'm', u_h: 'h', ago_s: '{n} s', ago_m: '{n} min', lang_button: '中文',
      on_duty: '{n} on duty',
      h_queue: 'Queue', h_waiting: 'Wait', h_oldest: 'Oldest', h_sl: 'SL ≤{s}s', h_sl_any: 'SL',
      h_available: 'Free', h_on_duty: 'On duty', h_needed: 'Need', h_alerts: '⚠',
      quiet: '{n} quiet queues (no activity for an hour)', page: '{i}/{n}', page_alerts: 'Alerts {i}/{n}',
      paused: 'paused', more_alerts: '+{n} more', all_alerts: 'all alerts (A)',
      sev_n_critical: 'critical', sev_n_warning: 'warning', now: 'now', at_firing: 'at firing', open_for: 'for {d}',
      r_oldest_wait: 'Oldest wait', r_peak_load: 'Load', r_sla_breach: 'SL', r_staffing_gap: 'Staffing',
      needed_n: '{n} needed', on_duty_n: '{n} on duty', h_sev: 'Severity', h_rule: 'Rule', h_now: 'Now',
      h_fired: 'At firing', h_threshold: 'Threshold', h_open: 'Open', keys_hint: '← → page · space pause · A alerts',
    },
  };
  const QUEUE_NAMES = { presales: ['售前', 'Presales'], aftersales: ['售后', 'After-sales'] };
  // Words of composite queue names ("jd-presales", "tmall_vip"), shown in the board's language, short
  // (a queue's name has one column of a row: "PDD Refunds", not "Pinduoduo Refunds").
  const QUEUE_WORDS = {
    ...QUEUE_NAMES, refunds: ['退款', 'Refunds'], refund: ['退款', 'Refund'], returns: ['退货', 'Returns'],
    logistics: ['物流', 'Logistics'], shipping: ['物流', 'Shipping'], vip: ['VIP', 'VIP'], invoice: ['发票', 'Invoice'],
    invoices: ['发票', 'Invoices'], complaints: ['投诉', 'Complaints'], warranty: ['保修', 'Warranty'],
    install: ['安装', 'Install'], membership: ['会员', 'Members'], pdd: ['拼多多', 'PDD'], web: ['官网', 'Web'],
  };
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
  const BUDGET_EVERY_MS = 30000;
  const SILENT_RECONNECT_MS = 45000;
  const DRAIN_MINUTES = 10;           // staffing's backlog_drain: agents to clear the backlog within this
  // Layout (docs/wallboard.md). One unit U = 1% of the screen height (of a 16:9 area that fits).
  // Figures are never set below FIG_MIN_U units, text that changes (names, alerts) below 3.9, headings
  // below 2.8: at 5 m on a screen at least 1/6 of the distance tall, that is a digit height of 16
  // arcminutes or more (the ISO 9241-303 minimum) for every figure and name.
  const TILE_MAX = 4;                 // up to this many queues: full tiles; more: one row per queue
  const FIG_MIN_U = 4.5;
  const FIG_MAX_U = 9;
  const ROW_PER_FIG = 1 / 0.76;       // a row's height per figure font size
  const ROW_EMS = 19;                 // a row's narrowest width, in figure ems (wallboard.css .qrow)
  const NAME_EMS = 4.68;              // of which the name's column, at its narrowest
  const NAME_EMS_MAX = 14;            // names longer than this are cut (the full name is the tooltip)
  const HEAD_U = 6.6;                 // column heads' height: two lines of headings…
  const HEAD_PER_FIG = 1.47;          // …of .62 figure ems each, when the figures are larger
  const TOP_ALERTS = 3;
  const ROTATE_S = (() => {           // seconds per page (?rotate=N; 0 holds the page)
    const n = Number(new URLSearchParams(location.search).get('rotate'));
    return isFinite(n) && n >= 0 && new URLSearchParams(location.search).has('rotate') ? n : 12;
  })();

  // ---- state ---------------------------------------------------------------------------------
  const params = new URLSearchParams(location.search);
  const state = {
    budget: [],  // per shop: the platform rule with the fewest misses left today (GET /v1/standing)
    lang: pickLang(),
    filters: {
      queue: params.get('queue') || '',
      tenant: params.get('tenant') || '',
      shop_id: params.get('shop_id') || '',
      platform: params.get('platform') || '',
    },
    // A saved board: only these queues (names or globs) and/or this group; the stream filters.
    selection: { queues: params.get('queues') || '', group: params.get('group') || '' },
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
  const CJK = /[\u3400-\u9fff]/;
  function queueLabel(q) {
    if (QUEUE_NAMES[q]) return L(QUEUE_NAMES[q]);
    const parts = String(q).split(/[-_.:/ ]+/).filter(Boolean);
    let known = 0;
    const words = parts.map((w) => {
      const k = w.toLowerCase();
      const name = QUEUE_WORDS[k] || PLATFORM_NAMES[k];
      if (name) { known += 1; return L(name); }
      return w;
    });
    if (!known) return q;
    // Chinese words run together ("京东售前"); anything else is separated by a space.
    return words.reduce((out, w) => out + (out && !(CJK.test(out.slice(-1)) && CJK.test(w[0])) ? ' ' : '') + w, '');
  }
  const platformLabel = (p) => (PLATFORM_NAMES[p] ? L(PLATFORM_NAMES[p]) : p);

  // Dense views (rows, alerts, the quiet line) leave out the words every queue on the board shares
  // (a saved board's group, a shop's prefix): "jd-presales-x1", "jd-refunds-x1" show as 售前, 退款
  // under a header naming the board. The full name stays in the element's title.
  let commonWords = new Set();
  const wordsOf = (q) => String(q).split(/[-_.:/ ]+/).filter(Boolean);
  function findCommonWords(names) {
    if (names.length < 2) return new Set();
    let common = new Set(wordsOf(names[0]).map((w) => w.toLowerCase()));
    for (const n of names.slice(1)) {
      const ws = new Set(wordsOf(n).map((w) => w.toLowerCase()));
      common = new Set([...common].filter((w) => ws.has(w)));
    }
    return common;
  }
  function shortLabel(q) {
    const kept = wordsOf(q).filter((w) => !commonWords.has(w.toLowerCase()));
    return kept.length && commonWords.size ? queueLabel(kept.join('-')) : queueLabel(q);
  }

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

  // ---- colours from the alert rules' levels -----------------------------------------------------
  const RANK = { none: 0, ok: 1, warn: 2, crit: 3 };
  const worst = (a, b) => (RANK[b] > RANK[a] ? b : a);
  function on(rule) { return rule && rule.enabled !== false ? rule : null; }

  // Colours are the alert rules' own levels, judged by the scorer with the view (`judged.levels`):
  // the board never judges by rules of its own, so it cannot disagree with the pages.
  const LEVEL = { critical: 'crit', warning: 'warn', ok: 'ok' };
  function judge(view, th, sig) {
    const out = { oldest: 'none', sl: 'none', rho: 'none', required: 'none', rhoValue: null, overload: false };
    if (sig) { out.rhoValue = isNum(sig.rho) ? sig.rho : null; out.overload = !isNum(sig.rho) && !!sig.overload; }
    const levels = (view.judged || {}).levels || {};
    const level = (rule) => LEVEL[levels[rule]] || 'none';
    out.oldest = level('oldest_wait');
    out.sl = level('sla_breach');
    out.rho = level('peak_load');
    out.required = level('staffing_gap');
    return out;
  }

  // ---- DOM -------------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const board = $('board');
  const template = $('tile-template');

  function applyStaticText() {
    document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
    document.title = 'Floorwatch · ' + t('title');
    const sel = state.selection;
    const named = sel.group || sel.queues;
    $('board-name').textContent = named ? named : '';
    $('board-name').hidden = !named;
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

  // The formatters' only markup is a unit, `<span class="u">…</span>`, around escaped text: built here
  // as nodes whose text is set as text, so nothing from the data is ever parsed as HTML.
  const UNIT_SPAN = /<span class="u">([^<]*)<\/span>/g;
  const UNESC = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };
  const unesc = (s) => s.replace(/&(amp|lt|gt|quot|#39);/g, (x) => UNESC[x]);
  function formatted(html) {
    const nodes = [];
    let last = 0;
    for (const m of html.matchAll(UNIT_SPAN)) {
      if (m.index > last) nodes.push(document.createTextNode(unesc(html.slice(last, m.index))));
      const span = document.createElement('span');
      span.className = 'u';
      span.textContent = unesc(m[1]);
      nodes.push(span);
      last = m.index + m[0].length;
    }
    if (last < html.length) nodes.push(document.createTextNode(unesc(html.slice(last))));
    return nodes;
  }

  function setV(el, html, level) {
    if (el.__html !== html) { el.replaceChildren(...formatted(html)); el.__html = html; toFit.add(el.closest('.v') || el); }
    el.classList.toggle('nd', html === ND);
    for (const c of ['ok', 'warn', 'crit']) el.classList.toggle(c, level === c);
  }

  function visibleViews() {
    const q = state.filters.queue;
    return q ? state.views.filter((v) => v.queue === q) : state.views;
  }

  function alertsFor(queue) {
    const f = state.filters;
    const firing = [...state.alerts.values()].filter((a) => a.state === 'firing');
    // One condition, one page (METRICS.md): a queue across shops pages at its roll-up (its shops' alerts
    // grouped under it), a queue in one shop pages at the shop. So a board over many shops shows the
    // roll-up where one fires and the shops' own alerts otherwise.
    const rollups = new Set(firing.filter((a) => (a.shop_id || '*') === '*' && a.group).map((a) => a.group));
    const out = [];
    for (const a of firing) {
      if (queue !== undefined && a.queue !== queue) continue;
      if (f.queue && a.queue !== f.queue) continue;
      if (state.viewQueues && !state.viewQueues.has(a.queue)) continue;  // a saved board: its queues only
      const shop = a.shop_id || '*';
      if (f.shop_id) { if (shop !== f.shop_id || (f.platform && a.platform !== f.platform)) continue; }
      else if (f.tenant || f.platform) {
        // A tenant's or platform's board: its own shops' alerts (a roll-up also counts other tenants').
        if (shop === '*' || (f.tenant && a.tenant !== f.tenant) || (f.platform && a.platform !== f.platform)) continue;
      } else if (shop !== '*' && rollups.has(a.group)) continue;
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

  // ---- urgency, quiet queues, pages ------------------------------------------------------------
  const LEVEL_RANK = { none: 0, ok: 1, warn: 2, crit: 3 };

  // A queue's reading for ordering and colouring: its worst colour (as the alert rules judge) and
  // its firing alerts, its oldest wait, and whether it has been idle for the last hour.
  function queueInfo(view) {
    const th = state.thresholds.get(view.queue) || null;
    const sig = state.signals[view.queue] || null;
    const j = judge(view, th, sig);
    const firing = alertsFor(view.queue);
    let level = [j.oldest, j.sl, j.rho, j.required].reduce(worst, 'none');
    if (firing.length) level = worst(level, firing[0].severity === 'critical' ? 'crit' : 'warn');
    const live = view.live || {};
    const hour = (view.windows || {})['1h'] || {};
    const msgs = hour.messages || {};
    const quiet = !firing.length && !(live.awaiting_reply > 0) && !(live.unanswered > 0) && hour.arrivals === 0 &&
      !(hour.closed > 0) && !(msgs.customer > 0) && !(msgs.agent > 0);
    const wait = live.awaiting_reply > 0 && isNum(live.oldest_wait_s) ? live.oldest_wait_s : null;
    return { view, j, sig, firing, level, rank: LEVEL_RANK[level], wait, quiet };
  }

  // Most urgent first: severity, then the oldest wait (then the name). The order shown last is kept
  // while it is still right within a margin (no queue outranks one above it by severity, or by a
  // wait longer by 10% and 10 s): waits that tick up together, or swap by a few seconds, move
  // nothing; a queue turning red, or one whose oldest buyer was answered, re-sorts the board.
  let shownOrder = [];
  function beats(B, A) {
    if (A.rank !== B.rank) return B.rank > A.rank;
    if (B.wait === null) return false;
    return B.wait > (A.wait === null ? 0 : A.wait) * 1.1 + 10;
  }
  function urgencyOrder(infos) {
    const kept = shownOrder.filter((q) => infos.has(q));
    let list = kept.length === infos.size ? kept : null;
    for (let i = 0; list && i < list.length; i += 1) {
      for (let j = i + 1; j < list.length; j += 1) {
        if (beats(infos.get(list[j]), infos.get(list[i]))) { list = null; break; }
      }
    }
    if (!list) {
      list = [...infos.keys()].sort((a, b) => {
        const A = infos.get(a); const B = infos.get(b);
        if (A.rank !== B.rank) return B.rank - A.rank;
        const wa = A.wait === null ? -1 : A.wait; const wb = B.wait === null ? -1 : B.wait;
        return wb - wa || (a < b ? -1 : a > b ? 1 : 0);
      });
    }
    shownOrder = list;
    return list;
  }

  function unitPx() { return Math.min(window.innerHeight, window.innerWidth * 0.5625) / 100; }

  // How rows fit the board: columns side by side while a row stays ROW_EMS figure-ems wide at the
  // minimum figure size; as many rows as fit the height at that size. A floor that fits on one page
  // gets the largest figures that fit (up to FIG_MAX_U); a bigger one is paged at the minimum size.
  // The longest queue name, in figure ems (names are set bold at .87 of the figure size): a board of
  // long Latin names gets fewer, wider columns (and more pages) rather than cut names.
  const measure = document.createElement('canvas').getContext('2d');
  let namesKey = ''; let namesEms = NAME_EMS;
  function longestName(labels) {
    const key = state.lang + '\n' + labels.join('\n');
    if (key !== namesKey && measure) {
      namesKey = key;
      measure.font = '700 100px ' + getComputedStyle(document.body).fontFamily;
      const widest = Math.max(0, ...labels.map((l) => measure.measureText(l).width));
      namesEms = widest / 100 * 0.87 + 0.15;
    }
    return Math.min(NAME_EMS_MAX, Math.max(NAME_EMS, namesEms));
  }

  function planRows(n, box, nameEms) {
    const u = unitPx();
    const gap = 1.6 * u;
    const minFig = FIG_MIN_U * u;
    const rowEms = ROW_EMS - NAME_EMS + nameEms;
    const colsMax = Math.max(1, Math.min(3, Math.floor((box.w + gap) / (rowEms * minFig + gap))));
    const rowsFit = Math.max(1, Math.floor((box.h - HEAD_U * u) / (minFig * ROW_PER_FIG)));
    if (n > colsMax * rowsFit) return { cols: colsMax, rows: rowsFit, fig: minFig, perPage: colsMax * rowsFit, u };
    let best = null;
    for (let cols = 1; cols <= colsMax; cols += 1) {
      const rows = Math.max(1, Math.ceil(n / cols));
      const colW = (box.w - (cols - 1) * gap) / cols;
      // The heads grow with the figures: rows × row height + max(HEAD_U, HEAD_PER_FIG × fig) ≤ height.
      const fig = Math.min(FIG_MAX_U * u, colW / rowEms, (box.h - HEAD_U * u) / rows / ROW_PER_FIG,
        box.h / (rows * ROW_PER_FIG + HEAD_PER_FIG));
      if (!best || fig > best.fig + 0.5) best = { cols, rows, fig, perPage: Math.max(1, n), u };
    }
    best.fig = Math.max(best.fig, minFig);
    return best;
  }

  function boardBox() {
    const cs = getComputedStyle(board);
    return {
      w: board.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight),
      h: board.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom),
    };
  }

  function chunk(list, size) {
    const out = [];
    for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
    return out;
  }

  // ---- pages and their timer ---------------------------------------------------------------------
  const pager = { index: 0, paused: ROTATE_S === 0, shownAt: performance.now(), pages: [{ kind: 'queues', items: [] }] };
  function pageKey(p) { return p ? p.kind + ':' + p.n : ''; }
  function goPage(index) {
    const n = pager.pages.length;
    pager.index = ((index % n) + n) % n;
    pager.shownAt = performance.now();
    restartTimer();
    renderBoard();
  }
  function restartTimer() {
    const fill = $('timer-fill');
    fill.style.transition = 'none';
    fill.style.width = '0%';
    if (pager.paused || ROTATE_S === 0 || pager.pages.length < 2) return;
    void fill.offsetWidth;  // start the transition from 0 in this frame
    fill.style.transition = 'width ' + ROTATE_S + 's linear';
    fill.style.width = '100%';
  }
  function firstAlertPage() { return pager.pages.findIndex((p) => p.kind === 'alerts'); }
  function rotate() {
    if (pager.paused || ROTATE_S === 0 || pager.pages.length < 2) return;
    if (performance.now() - pager.shownAt >= ROTATE_S * 1000) goPage(pager.index + 1);
  }

  function renderPager() {
    const el = $('pager');
    const pages = pager.pages;
    const page = pages[pager.index];
    el.hidden = pages.length < 2;
    el.classList.toggle('paused', pager.paused);
    const same = pages.filter((p) => p.kind === page.kind);
    const label = page.kind === 'alerts'
      ? t('page_alerts', { i: same.indexOf(page) + 1, n: same.length }) : t('page', { i: pager.index + 1, n: pages.length });
    $('page-label').textContent = label + (pager.paused && pages.length > 1 ? ' · ' + t('paused') : '');
    board.dataset.page = String(pager.index + 1);
    board.dataset.pages = String(pages.length);
    board.dataset.kind = page.kind;
  }

  // ---- the board -----------------------------------------------------------------------------------
  function renderBoard() {
    const views = visibleViews();
    commonWords = findCommonWords(views.map((v) => v.queue));
    const infos = new Map();
    for (const v of views) infos.set(v.queue, queueInfo(v));
    const active = []; const quiet = [];
    for (const q of urgencyOrder(infos)) (infos.get(q).quiet ? quiet : active).push(infos.get(q));
    const mode = active.length <= TILE_MAX || window.innerWidth < 1100 ? 'tiles' : 'rows';
    document.body.classList.toggle('mode-rows', mode === 'rows');
    document.body.classList.toggle('mode-tiles', mode === 'tiles');
    board.dataset.mode = mode;
    renderQuiet(quiet);  // first: the line takes height from the board

    // Pages: the queues (one page of tiles, or rows in pages), then the alerts beyond the top three.
    const box = boardBox();
    const plan = mode === 'rows' ? planRows(active.length, box, longestName(active.map((i) => shortLabel(i.view.queue)))) : null;
    const queuePages = mode === 'rows' ? chunk(active, plan.perPage) : [active];
    if (!queuePages.length) queuePages.push([]);
    const alertList = byUrgency(state.alertsOk ? alertsFor(undefined) : []);
    const alertRows = Math.max(1, Math.floor((box.h - HEAD_U * unitPx()) / (FIG_MIN_U * unitPx() * ROW_PER_FIG)));
    const alertPages = alertList.length > TOP_ALERTS ? chunk(alertList, alertRows) : [];
    const before = pageKey(pager.pages[pager.index]);
    pager.pages = queuePages.map((items, n) => ({ kind: 'queues', items, n }))
      .concat(alertPages.map((items, n) => ({ kind: 'alerts', items, n, total: alertList.length })));
    if (pager.index >= pager.pages.length) pager.index = 0;
    const page = pager.pages[pager.index];
    if (pageKey(page) !== before) { pager.shownAt = performance.now(); restartTimer(); }

    const showTiles = page.kind === 'queues' && mode === 'tiles';
    const showRows = page.kind === 'queues' && mode === 'rows';
    renderTiles(showTiles ? page.items : []);
    renderRows(showRows ? page.items : [], plan);
    renderAlertPage(page.kind === 'alerts' ? page : null);
    const empty = $('empty');
    empty.hidden = views.length > 0 && (active.length > 0 || page.kind === 'alerts');
    empty.textContent = !state.everData ? t('waiting_data') : views.length ? '' : t('empty');
    renderPager();
    flushFit();
  }

  function renderTiles(items) {
    const seen = new Set();
    let prev = null;
    for (const info of items) {
      const el = renderTile(info.view);
      seen.add(info.view.queue);
      const want = prev ? prev.nextSibling : board.firstChild;
      if (want !== el) board.insertBefore(el, want);
      prev = el;
    }
    for (const [q, el] of tiles) {
      if (!seen.has(q)) { el.remove(); tiles.delete(q); }
    }
    if (board.dataset.n !== String(items.length)) {
      board.dataset.n = String(items.length);
      layout(items.length);
      refit();
    }
  }

  // ---- rows: one line per queue ------------------------------------------------------------------
  const rowsBox = $('rows');
  const rowEls = new Map();  // queue → row element
  const ROW_CELLS = [
    ['label', 'queue-name'], ['awaiting', 'awaiting'], ['oldest', 'oldest-wait'], ['sl', 'sl'],
    ['available', 'agents-available'], ['on_duty', 'agents-on-duty'], ['needed', 'required-agents'], ['flag', 'alert-flag'],
  ];

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function rowFor(queue) {
    let row = rowEls.get(queue);
    if (!row) {
      row = el('div', 'qrow');
      row.setAttribute('data-testid', 'queue-row');
      row.dataset.queue = queue;
      row.k = {};
      for (const [k, testid] of ROW_CELLS) {
        const c = el('div', 'c c-' + k);
        c.setAttribute('data-testid', testid);
        row.k[k] = c;
        row.appendChild(c);
      }
      rowEls.set(queue, row);
    }
    return row;
  }

  // Row cells are never shrunk below the minimum size: their columns are sized for the figures they
  // hold (a unit such as "%" is set smaller, so "100%" fits its column).
  function setCell(c, text, level, unitText) {
    const key = text + (unitText && text !== ND ? unitText : '');
    if (c.__text !== key) {
      c.__text = key;
      c.textContent = text;
      if (unitText && text !== ND) c.appendChild(el('span', 'u', unitText));
    }
    c.classList.toggle('nd', text === ND);
    for (const x of ['ok', 'warn', 'crit']) c.classList.toggle(x, level === x);
  }

  // The oldest wait as a clock ("12:34", "1:02:03"): the same width every second, readable across a room.
  function clockText(s) {
    if (!isNum(s)) return ND;
    let n = Math.max(0, Math.floor(s));
    const h = Math.floor(n / 3600); n -= h * 3600;
    const m = Math.floor(n / 60); const sec = n - m * 60;
    return (h ? h + ':' + String(m).padStart(2, '0') : String(m)) + ':' + String(sec).padStart(2, '0');
  }

  function renderRow(info) {
    const row = rowFor(info.view.queue);
    const k = row.k;
    const v = info.view;
    const live = v.live || {};
    const th = state.thresholds.get(v.queue) || null;
    const sig = info.sig || {};
    const label = shortLabel(v.queue);
    if (k.label.textContent !== label) k.label.textContent = label;
    k.label.title = v.queue;
    setCell(k.awaiting, fmtCount(live.awaiting_reply), 'none');
    setCell(k.oldest, live.awaiting_reply === 0 ? ND : clockText(live.oldest_wait_s), info.j.oldest);
    const sb = th && on(th.sla_breach);
    const slAt = sb ? String(sb.threshold_s) : '30';
    const slv = (((v.windows || {})['5m'] || {}).sl || {})[slAt];
    setCell(k.sl, isNum(slv) ? String(Math.floor(slv * 100 + 1e-9)) : ND, sb ? info.j.sl : 'none', '%');
    setCell(k.available, fmtCount(live.agents_available), 'none');
    setCell(k.on_duty, fmtCount(sig.agents_staffing), 'none');
    setCell(k.needed, fmtCount(sig.required_agents), info.j.required);
    const n = info.firing.length;
    setCell(k.flag, n ? String(n) : '', 'none');
    k.flag.classList.toggle('crit', n > 0 && info.firing[0].severity === 'critical');
    k.flag.classList.toggle('warn', n > 0 && info.firing[0].severity !== 'critical');
    for (const c of ['s-ok', 's-warn', 's-crit']) row.classList.toggle(c, info.level !== 'none' && c === 's-' + info.level);
    row.classList.toggle('alerting', n > 0);
    const asOf = Date.parse(v.as_of);
    const age = isNum(asOf) ? (serverNow() - asOf) / 1000 : null;
    row.classList.toggle('stale', (age === null || age > state.staleAfterS) && !document.body.classList.contains('stale'));
    return row;
  }

  function headRow(slLabel) {
    const head = el('div', 'qrow qhead');
    const keys = ['h_queue', 'h_waiting', 'h_oldest', null, 'h_available', 'h_on_duty', 'h_needed', 'h_alerts'];
    for (const key of keys) head.appendChild(el('div', 'c', key ? t(key) : slLabel));
    return head;
  }

  function renderRows(items, plan) {
    rowsBox.hidden = !items.length;
    if (!items.length) {
      rowsBox.textContent = '';
      if (rowEls.size) rowEls.clear();
      return;
    }
    const u = plan.u;
    rowsBox.style.setProperty('--fig', plan.fig.toFixed(1) + 'px');
    rowsBox.style.setProperty('--row-h', (plan.fig * ROW_PER_FIG).toFixed(1) + 'px');
    rowsBox.style.setProperty('--head-h', Math.max(HEAD_U * u, HEAD_PER_FIG * plan.fig).toFixed(1) + 'px');
    rowsBox.style.setProperty('--rcols', String(plan.cols));
    // The SL column at the alert's own threshold, when every queue shown has the same one.
    const ats = new Set(items.map((i) => { const th = state.thresholds.get(i.view.queue); return th ? th.sla_breach.threshold_s : 30; }));
    const slLabel = ats.size === 1 ? t('h_sl', { s: [...ats][0] }) : t('h_sl_any');
    const perCol = Math.ceil(items.length / plan.cols);
    const cols = chunk(items, Math.max(perCol, 1));
    // Rebuilt as columns each render; the row elements (and their text) are kept, so nothing flickers.
    const keep = new Set(items.map((i) => i.view.queue));
    for (const q of [...rowEls.keys()]) if (!keep.has(q)) rowEls.delete(q);
    const colEls = [];
    cols.forEach((colItems) => {
      const col = el('div', 'rcol');
      col.style.setProperty('--nrows', String(perCol));
      col.appendChild(headRow(slLabel));
      for (const info of colItems) col.appendChild(renderRow(info));
      colEls.push(col);
    });
    rowsBox.replaceChildren(...colEls);
  }

  // ---- the alert page: every firing alert, a row each ------------------------------------------------
  const alertPageBox = $('alist');
  function renderAlertPage(page) {
    alertPageBox.hidden = !page;
    if (!page) { alertPageBox.textContent = ''; return; }
    const u = unitPx();
    alertPageBox.style.setProperty('--fig', (FIG_MIN_U * u).toFixed(1) + 'px');
    alertPageBox.style.setProperty('--row-h', (FIG_MIN_U * u * ROW_PER_FIG).toFixed(1) + 'px');
    alertPageBox.style.setProperty('--head-h', (HEAD_U * u).toFixed(1) + 'px');
    const head = el('div', 'arow ahead');
    for (const key of ['h_sev', 'h_queue', 'h_rule', 'h_now', 'h_fired', 'h_threshold', 'h_open']) head.appendChild(el('div', 'c', t(key)));
    const rows = [head];
    const now = serverNow();
    for (const a of page.items) {
      const r = el('div', 'arow ' + (a.severity === 'critical' ? 'crit' : 'warn'));
      r.setAttribute('data-testid', 'alert-row');
      r.dataset.queue = a.queue; r.dataset.rule = a.rule; r.dataset.severity = a.severity;
      r.appendChild(el('div', 'c sev', t(a.severity === 'critical' ? 'sev_critical' : 'sev_warning')));
      r.appendChild(el('div', 'c aq', alertScope(a)));
      r.appendChild(el('div', 'c', ruleLabel(a.rule)));
      r.appendChild(el('div', 'c num now', alertValue(a, currentOf(a))));
      r.appendChild(el('div', 'c num', alertValue(a, a.value)));
      r.appendChild(el('div', 'c num', alertThreshold(a)));
      r.appendChild(el('div', 'c num', openFor(a, now)));
      rows.push(r);
    }
    alertPageBox.replaceChildren(...rows);
  }

  function renderQuiet(quiet) {
    const box = $('quiet');
    box.hidden = !quiet.length;
    if (!quiet.length) { box.textContent = ''; return; }
    const names = quiet.map((i) => shortLabel(i.view.queue)).join(' · ');
    const text = t('quiet', { n: quiet.length });
    if (box.dataset.text !== text + names) {
      box.dataset.text = text + names;
      box.replaceChildren(el('span', 'quiet-title', text), el('span', 'quiet-names', names));
      box.dataset.queues = quiet.map((i) => i.view.queue).join(',');
    }
  }

  // ---- alerts: counts, the three most urgent, the rest a key away ---------------------------------
  function ruleLabel(rule) { return t('r_' + rule) === 'r_' + rule ? rule : t('r_' + rule); }
  const isSurge = (a) => /surge|倍/.test(String(a.summary_en) + String(a.summary_zh));
  // An alert's value now. The board only lists alerts of the scope it shows, so the stream's reading
  // of that queue (`signals`, what the rules judge, renewed each second) is the freshest; else the
  // API's current_value (renewed when the alerts are polled), else the value at firing.
  function currentOf(a) {
    const sig = state.signals[a.queue];
    if (sig) {
      const now = a.rule === 'oldest_wait' ? sig.oldest_wait_s : a.rule === 'sla_breach' ? sig.sl_5m
        : a.rule === 'staffing_gap' ? sig.required_agents : a.rule === 'peak_load' && !isSurge(a) ? sig.rho : null;
      if (isNum(now)) return now;
    }
    return a.current_value !== undefined && a.current_value !== null ? a.current_value : a.value;
  }
  function alertScope(a) {
    const parts = [shortLabel(a.queue)];
    if (a.shop_id && a.shop_id !== '*') parts.push(a.shop_id);
    else if (a.tenant && a.tenant !== '*') parts.push(a.tenant);
    if (a.platform && a.platform !== '*') parts.push(platformLabel(a.platform));
    return parts.join(' · ');
  }
  // A figure as the rule measures it: a wait as a clock, a service level in %, load as ρ or a surge
  // ratio, staffing as agents needed.
  function alertValue(a, v) {
    if (a.rule === 'peak_load' && !isNum(v)) return t('overload');
    if (!isNum(v)) return ND;
    if (a.rule === 'oldest_wait') return clockText(v);
    if (a.rule === 'sla_breach') return pctText(v);
    if (a.rule === 'peak_load') return isSurge(a) ? v.toFixed(1) + '×' : 'ρ ' + pctText(v);
    if (a.rule === 'staffing_gap') return t('needed_n', { n: Math.round(v) });
    return String(Math.round(v * 100) / 100);
  }
  function alertThreshold(a) {
    if (a.rule === 'staffing_gap') return isNum(a.threshold) ? t('on_duty_n', { n: Math.round(a.threshold) }) : ND;
    if (a.rule === 'peak_load' && isNum(a.threshold) && isSurge(a)) return a.threshold + '×';
    return alertValue(a, a.threshold);
  }
  // How long an alert has been open: seconds, then whole minutes, then hours and minutes.
  function openFor(a, now) {
    const since = Date.parse(a.started_at);
    if (!isNum(since)) return ND;
    const s = Math.max(0, (now - since) / 1000);
    if (s < 60) return Math.floor(s) + t('u_s');
    if (s < 3600) return Math.floor(s / 60) + t('u_m');
    return durText(s, true);
  }

  // How far past its threshold an alert is now (1 = at it): a wait or a load over its limit, a
  // service level under its target, agents needed over those on duty.
  function excess(a) {
    const v = currentOf(a); const th = a.threshold;
    if (a.rule === 'peak_load' && !isNum(v)) return 99;  // overload: no slots at all
    if (!isNum(v) || !isNum(th) || th <= 0) return 1;
    return a.rule === 'sla_breach' ? th / Math.max(v, 0.01) : v / th;
  }
  // Most urgent first: critical before warning, then the furthest past its threshold (in quarter
  // steps first, so two alerts of different rules a hair apart do not swap every second), then the
  // longest open.
  function byUrgency(list) {
    return list.map((a) => [a, excess(a)]).sort((x, y) => {
      const [a, ea] = x; const [b, eb] = y;
      if (a.severity !== b.severity) return a.severity === 'critical' ? -1 : 1;
      return Math.floor(eb * 4) - Math.floor(ea * 4) || String(a.started_at).localeCompare(String(b.started_at)) ||
        eb - ea;
    }).map((x) => x[0]);
  }

  function renderAlerts() {
    const box = $('alerts');
    const list = byUrgency(state.alertsOk ? alertsFor(undefined) : []);  // no /v1/alerts (404): no summary
    if (!list.length) { box.hidden = true; box.textContent = ''; return; }
    const now = serverNow();
    const crit = list.filter((a) => a.severity === 'critical').length;
    const counts = el('div', 'acounts');
    for (const [sev, n] of [['critical', crit], ['warning', list.length - crit]]) {
      const c = el('div', 'acount ' + (sev === 'critical' ? 'crit' : 'warn') + (n ? '' : ' zero'));
      c.setAttribute('data-testid', 'alerts-' + sev);
      c.appendChild(el('b', '', String(n)));
      c.appendChild(el('span', '', t('sev_n_' + sev)));
      counts.appendChild(c);
    }
    const top = el('div', 'atop');
    for (const a of list.slice(0, TOP_ALERTS)) {
      const card = el('div', 'alert ' + a.severity);
      card.setAttribute('data-testid', 'alert');
      card.dataset.rule = a.rule; card.dataset.queue = a.queue; card.dataset.severity = a.severity;
      const summary = state.lang === 'zh' ? (a.summary_zh || a.summary_en) : (a.summary_en || a.summary_zh);
      card.title = summary || a.rule;  // the engine's sentence (at firing), for whoever stands close
      // Line 1: where, and for how long; line 2: what, its value now, and (small) the value at firing.
      const l1 = el('div', 'al1');
      // Severity is the card's colour bar and the counts beside it; the name gets the room.
      l1.appendChild(el('span', 'aq', alertScope(a)));
      const since = el('span', 'since', t('open_for', { d: openFor(a, now) }));
      since.setAttribute('data-testid', 'alert-open');
      l1.appendChild(since);
      // The value now first, so a narrow card cuts the rule's name, never the figure.
      const l2 = el('div', 'al2');
      const nowEl = el('span', 'anow', t('now') + ' ' + alertValue(a, currentOf(a)));
      nowEl.setAttribute('data-testid', 'alert-now');
      l2.appendChild(nowEl);
      l2.appendChild(el('span', 'arule', ruleLabel(a.rule)));
      l2.appendChild(el('span', 'fired', t('at_firing') + ' ' + alertValue(a, a.value)));
      card.append(l1, l2);
      top.appendChild(card);
    }
    const parts = [counts, top];
    if (list.length > TOP_ALERTS) {
      const more = el('button', 'amore');
      more.type = 'button';
      more.setAttribute('data-testid', 'alerts-more');
      more.append(el('b', '', t('more_alerts', { n: list.length - TOP_ALERTS })), el('span', '', t('all_alerts')));
      more.addEventListener('click', () => { const i = firstAlertPage(); if (i >= 0) goPage(i); });
      parts.push(more);
    }
    box.replaceChildren(...parts);
    box.classList.toggle('warning-only', crit === 0);
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
    renderAlerts();  // first: the summary's height is taken from the board
    renderBoard();
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
    const sel = {};
    if (state.selection.queues) sel.queues = state.selection.queues;
    if (state.selection.group) sel.group = state.selection.group;
    sel.delta = '1';  // after the first full frame, only what changed (services/api/delta.py)
    es = new EventSource('/v1/stream' + scopeQuery(sel));
    es.addEventListener('views', onViews);
    es.addEventListener('delta', onDelta);
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
    viewsReceived(data);
  }

  // A patch (services/api/delta.py): objects merge key by key, any other value replaces.
  function applyPatch(old, change) {
    if (!old || typeof old !== 'object' || Array.isArray(old) || !change || typeof change !== 'object'
        || Array.isArray(change)) return change;
    const out = Object.assign({}, old);
    for (const [k, v] of Object.entries(change)) out[k] = k in old ? applyPatch(old[k], v) : v;
    return out;
  }

  function onDelta(e) {
    let d;
    try { d = JSON.parse(e.data); } catch (_) { return; }
    const byQueue = new Map(state.views.map((v) => [v.queue, v]));
    for (const [q, p] of Object.entries(d.views || {})) if (byQueue.has(q)) byQueue.set(q, applyPatch(byQueue.get(q), p));
    for (const [q, v] of Object.entries(d.replace || {})) byQueue.set(q, v);
    const signals = Object.assign({}, state.signals, d.signals || {});
    for (const q of d.removed || []) { byQueue.delete(q); delete signals[q]; }
    const queues = [...byQueue.values()].sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1
      : String((a.scope || {}).shop_id).localeCompare(String((b.scope || {}).shop_id))));
    viewsReceived({ as_of: d.as_of, server_time: d.server_time, stale_after_s: d.stale_after_s, queues, signals,
                    options: d.options });
  }

  function viewsReceived(data) {
    const received = Date.now();
    const serverTime = Date.parse(data.server_time);
    if (isNum(serverTime)) state.clockOffsetMs = serverTime - received;
    if (isNum(data.stale_after_s)) state.staleAfterS = data.stale_after_s;
    const asOf = data.as_of ? Date.parse(data.as_of) : NaN;
    state.asOfMs = isNum(asOf) ? asOf : null;
    state.views = Array.isArray(data.queues) ? data.queues : [];
    const sel = state.selection;
    state.viewQueues = sel.queues || sel.group ? new Set(state.views.map((v) => v.queue)) : null;
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
    renderAlerts();
    renderBoard();
  }

  // ---- polling: staffing, thresholds, alerts ---------------------------------------------------
  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    return { status: r.status, body: r.ok ? await r.json() : null };
  }

  let staffingBusy = false;
  async function refreshStaffing() {
    // Rows show the alert rules' own staffing reading (the stream's signals); only tiles ask for more.
    const rows = board.dataset.mode ? board.dataset.mode === 'rows' : visibleViews().length > TILE_MAX;
    if (staffingBusy || rows) return;
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

  // The shops' platform budgets (shared/SCORECARD.md, platform standing): how many more buyers may miss
  // the platform's rule today before its rate falls under target; fewest first, amber under 20 % of the
  // day's budget, red when gone. Without /v1/standing (or any rate rule) the strip stays hidden.
  async function refreshBudget() {
    const f = state.filters;
    const q = new URLSearchParams();
    if (f.shop_id) q.set('shop_id', f.shop_id);
    if (f.platform) q.set('platform', f.platform);
    let standings = [];
    try {
      const { status, body } = await getJSON('/v1/standing' + (q.toString() ? '?' + q.toString() : ''));
      if (status === 200 && body && Array.isArray(body.standings)) standings = body.standings;
    } catch (_) { return; }  // keep what we have
    state.budget = standings.map((s) => {
      const rates = (s.rules || []).filter((r) => isNum(r.misses_left)).sort((a, b) => a.misses_left - b.misses_left);
      if (!rates.length || (f.tenant && s.tenant && s.tenant !== f.tenant)) return null;
      const r = rates[0];
      const whole = isNum(r.projected_counted) && isNum(r.target) ? Math.floor(r.projected_counted * (1 - r.target)) : null;
      return { shop: s.shop_id, platform: s.platform, left: r.misses_left, whole };
    }).filter(Boolean).sort((a, b) => a.left - b.left);
    renderBudget();
  }

  function renderBudget() {
    const el = $('budget');
    el.hidden = !state.budget.length;
    const title = document.createElement('b');
    title.textContent = t('budget_title') + ' ';
    el.replaceChildren(title, ...state.budget.map((b) => {
      const s = document.createElement('span');
      s.className = 'bshop ' + (b.left <= 0 ? 'gone' : isNum(b.whole) && b.left < 0.2 * b.whole ? 'low' : 'ok');
      s.dataset.testid = 'shop-budget';
      s.dataset.shop = b.shop;
      s.textContent = `${b.shop} · ${platformLabel(b.platform)} ${t('budget_left', { n: b.left })}`;
      return s;
    }));
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
    renderAlerts();
    renderBoard();
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
    rowEls.clear();
    shownOrder = [];
    connect();
    renderAll();
    refreshBudget();
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
    renderBudget();
  });
  window.addEventListener('resize', () => { layout(tiles.size); refit(); renderBoard(); });
  // A TV with a keyboard or remote: ← → / PageUp PageDown turn pages, space (or P) holds the page,
  // A shows the alert list (and back), Home the first page.
  document.addEventListener('keydown', (e) => {
    if (e.target && /^(SELECT|INPUT|TEXTAREA)$/.test(e.target.tagName)) return;
    const k = e.key;
    if (k === 'ArrowRight' || k === 'PageDown') goPage(pager.index + 1);
    else if (k === 'ArrowLeft' || k === 'PageUp') goPage(pager.index - 1);
    else if (k === 'Home') goPage(0);
    else if (k === 'a' || k === 'A') {
      const i = firstAlertPage();
      if (i >= 0) goPage(pager.pages[pager.index].kind === 'alerts' ? 0 : i);
    } else if (k === ' ' || k === 'p' || k === 'P') {
      pager.paused = ROTATE_S === 0 || !pager.paused;  // rotate=0: always held
      pager.shownAt = performance.now();
      restartTimer();
      renderPager();
    } else return;
    e.preventDefault();
  });
  $('pager').addEventListener('click', () => goPage(pager.index + 1));

  // ---- start -------------------------------------------------------------------------------------
  applyStaticText();
  connect();
  renderAll();
  pollAlerts();
  setInterval(() => {
    // A stream that has delivered nothing for a long while (a half-open connection): start again.
    if (state.conn === 'live' && performance.now() - state.lastEventAt > SILENT_RECONNECT_MS) connect();
    renderStatus();
    rotate();
    renderAlerts();
    renderBoard();
  }, 1000);
  setInterval(refreshStaffing, STAFFING_EVERY_MS);
  setInterval(refreshThresholds, THRESHOLDS_EVERY_MS);
  refreshBudget();
  setInterval(refreshBudget, BUDGET_EVERY_MS);
}());
