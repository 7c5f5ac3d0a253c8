"""benchmarks/results/throughput_freshness.png from latest.json (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = data.get("sections", {})
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    meta = data.get("meta", {})
    fig.suptitle(f"Floorwatch benchmarks — {meta.get('machine', {}).get('cores')} cores, broker on the same machine, "
                 f"{meta.get('date', '')[:10]} (commit {meta.get('git_commit')})", fontsize=11)

    ax = axes[0][0]
    tp = s.get("throughput", {})
    med = tp.get("median", {})
    names = [("scorer", "scorer worker"), ("ceiling", "bare aiokafka\n+ orjson"), ("peer", "Quix Streams\n(5 s step)"),
             ("peer_coarse", "Quix Streams\n(60 s step)")]
    xs = [(label, med[k]["events_per_s"]) for k, label in names if med.get(k, {}).get("events_per_s")]
    if xs:
        colors = ["#d62728", "#7f7f7f", "#1f77b4", "#9ecae1"][:len(xs)]
        bars = ax.bar([x[0] for x in xs], [x[1] for x in xs], color=colors)
        ax.set_yscale("log")
        for bar, (_, v) in zip(bars, xs, strict=True):
            ax.annotate(f"{v:,.0f}/s", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=9)
        ratio = tp.get("ratio_scorer_to_ceiling")
        peer = tp.get("ratio_scorer_to_peer")
        ax.set_title(f"Throughput, one process (median of {tp.get('rounds')} runs)\n"
                     f"scorer ÷ ceiling = {ratio}, scorer ÷ peer = {peer}", fontsize=10)
        ax.set_ylabel("events/s (log)")
    else:
        ax.set_title("Throughput: not measured")

    ax = axes[0][1]
    fr = s.get("freshness", {}).get("by_rate", {})
    if fr:
        rates = sorted(fr, key=float)
        labels = [f"{float(r):,.0f}/s\n{fr[r].get('api', {}).get('seen', 0)}/"
                  f"{fr[r].get('api', {}).get('probes', 0)} seen" for r in rates]
        width = 0.14
        series = [("api", "p50_s", "#2ca02c"), ("api", "p99_s", "#98df8a"), ("sse", "p50_s", "#1f77b4"),
                  ("sse", "p99_s", "#9ecae1"), ("metrics", "p50_s", "#ff7f0e"), ("metrics", "p99_s", "#ffbb78")]
        for i, (where, stat, color) in enumerate(x for x in series if x[0] in fr[rates[0]]):
            vals = []
            for r in rates:
                v = fr[r].get(where, {}).get(stat)
                vals.append(v if v is not None else fr[r].get(where, {}).get("censored_after_s") or 0)
            pos = [j + (i - 2.5) * width for j in range(len(rates))]
            ax.bar(pos, vals, width, label=f"{where} {stat[:-2]}", color=color)
            for j, r in enumerate(rates):
                if fr[r].get(where, {}).get(stat) is None:
                    ax.annotate("not seen\nin time", (pos[j], vals[j]), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(rates)), labels)
        ax.set_ylabel("seconds from ingest 202 (log)")
        ax.set_yscale("log")
        ax.axhline(1.0, color="#d62728", linewidth=0.8, linestyle="--")
        ax.set_title("Freshness by events/s offered (dashed: 1 s)\n202 → figure changed at API, SSE, /metrics",
                     fontsize=10)
        ax.legend(fontsize=8)
    else:
        ax.set_title("Freshness: not measured")

    ax = axes[1][0]
    day = s.get("memory", {}).get("day", {})
    if day.get("hourly"):
        hrs = day["hourly"]
        ax.plot([h["hour"] for h in hrs], [h["rss_mb"] for h in hrs], marker="o", label="RSS (MB)")
        ax2 = ax.twinx()
        ax2.plot([h["hour"] for h in hrs], [h.get("table", 0) for h in hrs], color="#9467bd", linestyle="--",
                 label="table entries (24 h tombstones included)")
        ax2.set_ylabel("conversations table entries")
        ax.set_xlabel("simulated hour")
        ax.set_ylabel("RSS MB")
        ax.set_title(f"Memory over a simulated day (floor x{day.get('floor_scale')}, {day.get('events', 0):,} events, "
                     "in-process)", fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
        ax2.legend(loc="lower right", fontsize=8)
    else:
        ax.set_title("Memory over a day: not measured")

    ax = axes[1][1]
    pts = [p for p in s.get("memory", {}).get("inprocess_open", []) if p.get("rss_mb")]
    if pts:
        ax.plot([p["open_conversations"] for p in pts], [p["rss_mb"] for p in pts], marker="o", label="in-process")
        rec = s.get("recovery", {})
        if rec.get("worker_rss_mb"):
            ax.scatter([rec["open_conversations"]], [rec["worker_rss_mb"]], color="#d62728", zorder=5,
                       label="real worker (memory://)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("open conversations")
        ax.set_ylabel("RSS MB")
        ax.set_title("Memory against open conversations", fontsize=10)
        ax.legend(fontsize=8)
    else:
        ax.set_title("Memory against open conversations: not measured")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
