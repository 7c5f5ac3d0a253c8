"""The headline table of benchmarks/results/latest.json as Markdown (what README's "Benchmarks" shows).

    python -m benchmarks.report [path/to/latest.json]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from .common import RESULTS


def fmt(x: Any, unit: str = "", digits: int = 0) -> str:
    if x is None:
        return "not measured"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}{unit}"
    return str(x)


def rows(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    s = data.get("sections", {})
    out: list[tuple[str, str, str]] = []
    tp = s.get("throughput", {})
    med = tp.get("median", {})
    if med:
        sc = med.get("scorer", {})
        scorer_runs = tp.get("runs", {}).get("scorer", [])
        counted = ", ".join(f"{r.get('measured_events', 0):,}" for r in scorer_runs)
        out.append(("scorer throughput, 1 worker", f"{fmt(sc.get('events_per_s'))} events/s, "
                    f"{fmt(sc.get('cpu_us_per_event'))} µs CPU/event",
                    f"median of {tp.get('rounds')} runs, each capped at {tp.get('caps_s', {}).get('scorer')} s "
                    f"(events scored per run: {counted} of the {tp.get('topic_events', 0):,} in the topic)"))
        ce = med.get("ceiling", {})
        out.append(("ceiling: bare aiokafka consumer + orjson", f"{fmt(ce.get('events_per_s'))} events/s, "
                    f"{fmt(ce.get('cpu_us_per_event'), digits=1)} µs CPU/event", "same topic, same run"))
        out.append(("**scorer ÷ ceiling**", f"**{fmt(tp.get('ratio_scorer_to_ceiling'), digits=4)}**", ""))
        pe = med.get("peer", {})
        if pe:
            out.append(("peer: Quix Streams (5-min window, 5 s step)", f"{fmt(pe.get('events_per_s'))} events/s, "
                        f"{fmt(pe.get('cpu_us_per_event'))} µs CPU/event",
                        "arrivals, FRT mean and p90 per queue only"))
            out.append(("**scorer ÷ peer**", f"**{fmt(tp.get('ratio_scorer_to_peer'), digits=2)}**",
                        f"÷ the 60 s-step variant ({fmt(med.get('peer_coarse', {}).get('events_per_s'))} events/s): "
                        f"{fmt(tp.get('ratio_scorer_to_peer_coarse'), digits=2)}"))
        else:
            out.append(("peer: Quix Streams", "not measured", str(tp.get("peer_not_measured"))))
    runs = [(rate, r, "") for rate, r in s.get("freshness", {}).get("by_rate", {}).items()]
    runs += [(rate, r, ", 2 scorer workers") for rate, r in s.get("freshness", {}).get("by_rate_2_workers", {}).items()]
    for rate, r, workers in sorted(runs, key=lambda run: (run[2], float(run[0]))):
        for where, label in (("api", "GET /v1/queues/{queue}"), ("sse", "GET /v1/stream (SSE)"),
                             ("metrics", "worker /metrics")):
            f = r.get(where)
            if f is None:
                continue
            if f.get("seen"):
                val = f"p50 {fmt(f.get('p50_s'), ' s', 2)}, p99 {fmt(f.get('p99_s'), ' s', 2)}"
            else:
                val = f"not seen within {f.get('censored_after_s')} s"
            timeout = s["freshness"].get("probe_timeout_s")
            note = (f"{f.get('seen', 0)} probes seen, {f.get('censored', 0)} not within {timeout} s; "
                    f"ingest took {fmt(r.get('ingest_accepted_per_s'))}/s, scored "
                    f"{fmt(r.get('scorer_consumed_per_s'))}/s" + (" by both workers" if workers else ""))
            out.append((f"freshness at {float(rate):,.0f} events/s offered{workers}: {label}", val, note))
        per = r.get("records", {})
        if per.get("events"):
            pub = per.get("published_bytes_per_event", {})
            out.append((f"records per event at {float(rate):,.0f} events/s offered{workers}",
                        f"{fmt(per.get('consumed_per_event_total'), digits=2)} consumed, "
                        f"{fmt(per.get('published_per_event_total'), digits=2)} published, "
                        f"{fmt(per.get('published_bytes_per_event_total'))} bytes published"
                        + (f", {fmt(per['state_writes_per_event_total'], digits=2)} table writes"
                           if "state_writes_per_event_total" in per else ""),
                        "bytes by topic: " + ", ".join(f"{t} {fmt(v)}" for t, v in pub.items())
                        + ("; table writes by table: " + ", ".join(
                            f"{t} {fmt(v, digits=2)}" for t, v in per.get("state_writes_per_event", {}).items())
                           if "state_writes_per_event" in per else "")))
    mem = s.get("memory", {})
    for p in mem.get("inprocess_open", []):
        out.append((f"RSS, {p['open_conversations']:,} open conversations (in-process)",
                    fmt(p.get("rss_mb"), " MB"), f"{fmt(p.get('bytes_per_conversation'))} bytes per conversation"
                    if p.get("rss_mb") else str(p.get("not_measured") or p.get("error") or p.get("stopped"))))
    rec = s.get("recovery", {})
    if rec.get("worker_rss_mb"):
        out.append((f"RSS, real worker, {rec['open_conversations']:,} open conversations",
                    fmt(rec.get("worker_rss_mb"), " MB"), "SCORER_STORE=memory://"))
    day = mem.get("day", {})
    if day.get("hourly"):
        out.append((f"RSS over a simulated day (floor x{day.get('floor_scale')}, {day.get('simulated_hours')} h fed)",
                    f"{fmt(day.get('rss_mb_after_warmup_min'))}–{fmt(day.get('rss_mb_after_warmup_max'))} MB "
                    "from hour 3", f"change from hour 3 to the last: {fmt(day.get('rss_growth_from_h3_mb'), ' MB')}"))
    wd = s.get("worker_day", {})
    for d in wd.get("by_setting", {}).values():
        if not d.get("hourly"):
            continue
        env = ", ".join(f"{k}={v}" for k, v in d.get("env", {}).items()) or "today's defaults"
        out.append((f"RSS of a real worker over a simulated day (floor x{wd.get('floor_scale')}, rocksdb://, "
                    f"{d.get('hours_scored')} of {d.get('hours', wd.get('hours'))} h scored)",
                    f"{fmt(d.get('rss_mb_after_warmup_min'))}–{fmt(d.get('rss_mb_after_warmup_max'))} MB from hour 3",
                    f"{env}; sampled peak {fmt(d.get('rss_mb_peak_sampled'), ' MB')}"))
    # Today's defaults, then each partition sizing fed beside it.
    for paced, resized in [(wd.get("paced", {}), False), *((p, True) for p in wd.get("paced_by_partitions", []))]:
        if not paced.get("hourly"):
            continue
        peak = f"sampled peak {fmt(paced.get('rss_mb_peak_sampled'), ' MB')}"
        if resized:
            sized = (f", EVENT_PARTITIONS={paced.get('event_partitions')} "
                     f"QUEUE_PARTITIONS={paced.get('queue_partitions')}")
            notes = f"otherwise today's defaults; fed beside the row above; {peak}"
        else:
            sized, notes = "", f"today's defaults; {peak}; the rows above caught up on a pre-filled day"
        out.append((f"RSS of a real worker fed a small floor as it happens (floor x{wd.get('floor_scale')}, "
                    f"rocksdb://{sized}, {paced.get('hours_scored')} of {paced.get('hours')} h at "
                    f"{fmt(paced.get('pace'))}x live)",
                    " / ".join(fmt(h.get("rss_mb")) for h in paced["hourly"])
                    + (f" MB at hours 1–{len(paced['hourly'])}" if len(paced["hourly"]) > 1 else " MB at hour 1"),
                    notes))
    if rec.get("cycles"):
        out.append((f"recovery after SIGKILL, {rec['open_conversations']:,} open conversations",
                    f"{fmt(rec.get('median_correct_s'), ' s', 1)} to correct figures",
                    f"median of {len(rec['cycles'])} kills; /healthz 200 after "
                    f"{fmt(rec.get('median_healthy_s'), ' s', 1)}"))
    elif rec.get("not_measured"):
        out.append(("recovery after SIGKILL", "not measured", rec["not_measured"]))
    rdb = rec.get("rocksdb", {})
    if rdb.get("cycles"):
        out.append((f"recovery after SIGKILL, {rdb['open_conversations']:,} open conversations, RocksDB store",
                    f"{fmt(rdb.get('median_correct_s'), ' s', 1)} to correct figures",
                    f"median of {len(rdb['cycles'])} kills; /healthz 200 after "
                    f"{fmt(rdb.get('median_healthy_s'), ' s', 1)}; the row above is memory://"))
    for take in s.get("takeover", {}).get("by_setting", {}).values():
        env = take.get("setting") or ", ".join(f"{k}={v}" for k, v in take.get("env", {}).items()) or "memory://"
        out.append((f"takeover of a SIGKILLed worker that never returns, {take['open_conversations']:,} open "
                    f"conversations on 2 workers ({env})",
                    f"{fmt(take.get('correct_s'), ' s', 1)} to correct figures" if take.get("correct_s")
                    else f"not within {take.get('not_within_s')} s" if take.get("not_within_s")
                    else str(take.get("not_measured")),
                    "the survivor notices after the session timeout, then takes the partitions over (a standby: "
                    "reads the changelogs' tail; none: restores them whole)"))
    for st in s.get("staffing", {}).get("by_agents", []):
        out.append((f"GET /v1/staffing/erlang, {st['required_agents']:,} agents",
                    f"p50 {fmt(st.get('p50_ms'), ' ms', 2)}, p99 {fmt(st.get('p99_ms'), ' ms', 2)}",
                    f"in-process (ASGI); the Erlang math alone {fmt(st.get('erlang_math_only_ms'), ' ms', 3)}"))
    return out


def markdown(data: dict[str, Any]) -> str:
    lines = ["| measure | result | notes |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(data)]
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    print(markdown(orjson.loads(path.read_bytes())))


if __name__ == "__main__":
    main()
