"use strict";
// The scorecard page: GET /v1/scorecard (today / month) as a leaderboard per platform, GET /v1/standing as the
// budget left per shop. Flags are advice on a screen, never an action (docs/scorecard.md).
(function () {
  const I18N = {
    zh: { title: "客服考核", today: "今日", month: "本月", advice: "标记仅供参考，不会自动执行任何操作。",
      agent: "客服", score: "得分", grade: "等级", chats: "接待量", frt: "首响(秒)", reply: "平响(秒)",
      rule: "平台达标率", csat: "满意率", conv: "询单转化", flags: "标记", as_of: "数据时间", left: "今日剩余可失误",
      service_star: "服务之星", coach: "需辅导", warning: "预警", none: "数据不足", empty: "暂无数据" },
    en: { title: "Agent scorecard", today: "Today", month: "Month", advice: "Flags are advice only; nothing acts on them.",
      agent: "Agent", score: "Score", grade: "Grade", chats: "Chats", frt: "FRT (s)", reply: "Reply (s)",
      rule: "Rule met", csat: "Satisfied", conv: "Conversion", flags: "Flags", as_of: "As of", left: "misses left today",
      service_star: "Service star", coach: "Coach", warning: "Warning", none: "not enough data", empty: "No data yet" },
  };
  const PLATFORMS = { jd: ["京东", "JD"], taobao: ["淘宝", "Taobao"], tmall: ["天猫", "Tmall"], pdd: ["拼多多", "Pinduoduo"] };
  let lang = "zh";
  let period = "today";
  const token = new URLSearchParams(location.search).get("access_token");
  const t = (k) => I18N[lang][k] || k;
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const num = (v, d) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(0) + "%");

  async function get(path) {
    const url = token ? path + (path.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(token) : path;
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  }

  function platformName(p) { const n = PLATFORMS[p]; return n ? n[lang === "zh" ? 0 : 1] : p; }

  function renderBoards(data) {
    const byPlatform = {};
    for (const row of data.agents) (byPlatform[row.platform] = byPlatform[row.platform] || []).push(row);
    const boards = document.getElementById("boards");
    const platforms = Object.keys(byPlatform).sort();
    if (!platforms.length) { boards.innerHTML = `<p class="advice">${t("empty")}</p>`; return; }
    boards.innerHTML = platforms.map((p) => {
      const rows = byPlatform[p].sort((a, b) => (b.score ?? -1) - (a.score ?? -1));
      const body = rows.map((r) => {
        const k = r.kpis;
        const grade = r.grade ? `<span class="grade ${esc(r.grade)}">${esc(r.grade)}</span>`
          : `<span class="grade none" title="${t("none")}">–</span>`;
        const flags = r.flags.map((f) => `<span class="flag" data-flag="${esc(f)}">${esc(t(f))}</span>`).join("");
        return `<tr data-testid="agent-row"><td class="agent">${esc(r.agent_id)}${flags}</td><td>${num(r.score, 1)}</td>`
          + `<td>${grade}</td><td>${r.chats_handled}</td><td>${num(k.frt_mean_s.value, 1)}</td>`
          + `<td>${num(k.reply_mean_s.value, 1)}</td><td>${pct(k.rule_met_rate.value)}</td>`
          + `<td>${pct(k.csat_satisfied_share.value)}</td><td>${pct(k.conversion_rate.value)}</td></tr>`;
      }).join("");
      const head = ["agent", "score", "grade", "chats", "frt", "reply", "rule", "csat", "conv"].map((h) => `<th>${t(h)}</th>`).join("");
      return `<section class="board" data-platform="${esc(p)}"><h2>${esc(platformName(p))}</h2><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></section>`;
    }).join("");
  }

  function renderStanding(data) {
    const el = document.getElementById("standing");
    el.innerHTML = data.standings.map((s) => {
      const rate = s.rules.find((r) => r.misses_left !== null);
      if (!rate) return "";
      const whole = Math.floor(rate.projected_counted * (1 - rate.target));
      const cls = rate.misses_left <= 0 ? "gone" : rate.misses_left < 0.2 * whole ? "low" : "";
      return `<div class="shop ${cls}" data-testid="shop-budget"><div>${esc(s.shop_id)} · ${esc(platformName(s.platform))}</div>`
        + `<div class="left">${rate.misses_left}</div><div>${t("left")} · ${pct(rate.rate)} / ${pct(rate.target)}</div></div>`;
    }).join("");
  }

  async function refresh() {
    try {
      const [card, standing] = await Promise.all([get("/v1/scorecard?period=" + period), get("/v1/standing")]);
      renderBoards(card);
      renderStanding(standing);
      document.getElementById("as-of").textContent = t("as_of") + " " + new Date(card.as_of).toLocaleTimeString();
    } catch (e) {
      document.getElementById("as-of").textContent = String(e);
    }
  }

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.getElementById("lang").textContent = lang === "zh" ? "EN" : "中文";
  }

  document.querySelectorAll("[data-period]").forEach((b) => b.addEventListener("click", () => {
    period = b.dataset.period;
    document.querySelectorAll("[data-period]").forEach((x) => x.classList.toggle("on", x === b));
    refresh();
  }));
  document.getElementById("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; applyLang(); refresh(); });
  document.querySelector('[data-period="today"]').classList.add("on");
  applyLang();
  refresh();
  setInterval(refresh, 15000);
})();
