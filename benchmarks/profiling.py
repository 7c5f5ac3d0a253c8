"""Profiles of the scorer's hot path: cProfile of InProcessScorer over a simulated hour, and py-spy of a real worker.

The in-process profile shows our code alone (stages, state machine, JSON); py-spy on a worker that
consumes a pre-filled topic shows where a real worker's time goes, Faust and aiokafka included, and
how much of the wall time it spends idle (waiting on the loop) rather than on the CPU.
Raw outputs go to benchmarks/results/ (git-ignored); the summary to latest.json and PROFILE.md.
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import io
import pstats
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from .common import RESULTS, START_MS, Broker, log, prefill, records_of, rnd, scaled_floor


def hour_records(scale: int) -> list[tuple[bytes, bytes]]:
    model = scaled_floor(scale, seed=11)
    recs: list[tuple[bytes, bytes]] = []
    for minute in range(1, 61):
        recs.extend(records_of(model.events_until(START_MS + minute * 60_000)))
    return recs


def feed(scorer: Any, recs: list[tuple[bytes, bytes]], tick_every: int) -> None:
    """Feed as a worker would: events, and one tick of every stage per `tick_every` events."""
    from services.core.events import event_from_record

    for i in range(0, len(recs), tick_every):
        chunk = recs[i:i + tick_every]
        scorer.feed_records(chunk)
        scorer.tick(event_from_record(chunk[-1][1]).ts_ms)


# The stage verbs whose CPU `unprofiled_run` adds up, and the steps inside them worth seeing apart (nested: a verb's
# figure includes its steps'). (module, class, method)
VERBS = (
    *(("services.scorer.stages", stage, verb) for stage in ("ConversationStage", "AgentStage", "QueueStage")
      for verb in ("on_event", "tick")),
    ("services.core.partials", "PartitionPartials", "widen"), ("services.core.windows", "WindowStore", "widen"),
    ("services.core.windows", "WindowStore", "advance"), ("services.core.merge", "QueueMerger", "views"),
)


def unprofiled_run(recs: list[tuple[bytes, bytes]], tick_every: int) -> tuple[float, float, dict[str, float]]:
    """(wall s, CPU s, CPU s in each stage verb and step of VERBS) of a feed as `feed` feeds, unprofiled: each verb
    wrapped to add up its process time (1.4 µs a call, timeit; ~340,000 calls in floor x2's hour: ~1 % of it)."""
    from services.scorer.inprocess import InProcessScorer

    spent: dict[str, float] = {}
    saved = []

    def timed(label: str, f: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - t0
        return wrapper

    for module, cls_name, method in VERBS:
        cls = getattr(importlib.import_module(module), cls_name)
        saved.append((cls, method, cls.__dict__[method]))
        setattr(cls, method, timed(f"{cls_name}.{method}", cls.__dict__[method]))
    try:
        s = InProcessScorer()
        t0, c0 = time.perf_counter(), time.process_time()
        feed(s, recs, tick_every)
        return time.perf_counter() - t0, time.process_time() - c0, spent
    finally:
        for cls, method, f in saved:
            setattr(cls, method, f)


def inprocess_profile(scale: int, tick_every: int) -> dict[str, Any]:
    from services.scorer.inprocess import InProcessScorer

    recs = hour_records(scale)
    # Unprofiled run first: the per-event cost (the verbs' timers add ~1 %), and each stage's share of it.
    wall, cpu, by_verb = unprofiled_run(recs, tick_every)
    s = InProcessScorer()
    prof = cProfile.Profile()
    prof.enable()
    feed(s, recs, tick_every)
    prof.disable()
    RESULTS.mkdir(parents=True, exist_ok=True)
    prof.dump_stats(str(RESULTS / "inprocess.prof"))
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(25)
    (RESULTS / "inprocess_tottime.txt").write_text(buf.getvalue())
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("cumulative").print_stats(40)
    (RESULTS / "inprocess_cumulative.txt").write_text(buf.getvalue())
    raw: Any = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:20]
    cum = sorted(raw.items(), key=lambda kv: kv[1][3], reverse=True)[:40]

    def name(k: tuple[str, int, str]) -> str:
        f, line, fn = k
        short = f.split("/site-packages/")[-1].replace(str(Path.cwd()) + "/", "")
        return f"{short}:{line}({fn})"

    return {
        "events": len(recs), "floor_scale": scale, "simulated_minutes": 60, "tick_every_events": tick_every,
        "unprofiled_events_per_s": rnd(len(recs) / wall), "unprofiled_cpu_us_per_event": rnd(cpu / len(recs) * 1e6),
        "cpu_us_per_event_by_verb": {k: rnd(v / len(recs) * 1e6) for k, v in sorted(by_verb.items())},
        "top_self_time": [{"function": name(k), "calls": v[1], "self_s": rnd(v[2], 3),
                           "self_share": rnd(v[2] / total, 3), "us_per_event": rnd(v[2] / len(recs) * 1e6, 2)}
                          for k, v in top],
        "top_cumulative": [{"function": name(k), "calls": v[1], "cum_s": rnd(v[3], 3),
                            "cum_share": rnd(v[3] / total, 3)} for k, v in cum],
    }


def _classify(frames: list[str]) -> str:
    """Which layer a sampled stack is spending its time in (innermost project frame decides)."""
    text = ";".join(frames)
    if "services/core/" in text or "services/scorer/stages.py" in text:
        for f in reversed(frames):
            if "services/core/" in f or "services/scorer/stages.py" in f:
                return "ours: " + f.split(" (")[0]
    if "prometheus_client" in text:
        return "prometheus scrape"
    if "rocksdict" in text or "faust/stores" in text:
        return "faust table store"
    if "faust/tables" in text:
        return "faust tables (changelog, set/get)"
    if "faust/transport" in text or "aiokafka" in text:
        return "faust transport / aiokafka"
    if "faust/" in text or "mode/" in text:
        return "faust streams / agents"
    if "asyncio" in text or "uvloop" in text or "selectors" in text:
        return "event loop"
    return "other"


def pyspy_path() -> str | None:
    """py-spy on PATH, or next to this interpreter (the venv's bin, when the venv is not activated)."""
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def pyspy_worker(b: Broker, scale: int, events: int, seconds: int) -> dict[str, Any]:
    """py-spy record (raw, with idle frames) and one dump of a real worker consuming a pre-filled topic."""
    pyspy = pyspy_path()
    if pyspy is None:
        return {"not_measured": "py-spy is not installed (install the `bench` extra)"}
    from .throughput import PARTITIONS, run_scorer

    topic = f"bench.profile.{uuid.uuid4().hex[:6]}"
    b.create_topic(topic, PARTITIONS)
    model = scaled_floor(scale, seed=13)
    recs: list[tuple[bytes, bytes]] = []
    t = START_MS
    while len(recs) < events:
        t += 60_000
        recs.extend(records_of(model.events_until(t)))
    asyncio.run(prefill(b.bootstrap, topic, recs))
    raw = RESULTS / "pyspy_worker.txt"
    dump_path = RESULTS / "pyspy_dump.txt"
    info: dict[str, Any] = {}

    async def attach(pid: int) -> dict[str, Any]:
        await asyncio.sleep(3)  # past startup and the first rebuilds
        dump = subprocess.run([pyspy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60,
                              check=False)
        dump_path.write_text(dump.stdout + dump.stderr)
        proc = await asyncio.create_subprocess_exec(
            pyspy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200", "--idle",
            "--format", "raw", "--output", str(raw), "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        info["recorder"] = proc
        return {"dump_ok": dump.returncode == 0}

    res = asyncio.run(run_scorer(b, topic, len(recs), seconds + 15, on_running=attach))
    proc = info.get("recorder")
    if proc is not None:
        with __import__("contextlib").suppress(Exception):
            asyncio.run(asyncio.wait_for(proc.wait(), 30))
    if not raw.exists():
        return {"not_measured": "py-spy record wrote nothing (ptrace not permitted?)", "worker": res}
    return {"worker": res, "seconds": seconds, **analyze_raw(raw)}


def analyze_raw(raw: Path) -> dict[str, Any]:
    """Idle share, busy time by layer and the hottest leaf frames of a py-spy raw (collapsed) file.

    Main thread only (the event loop that runs every stage); idle = samples waiting in the selector.
    """
    layers: Counter[str] = Counter()
    tick: Counter[str] = Counter()
    idle = 0
    total = 0
    in_tick = 0
    leaf: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        n = int(count_s)
        frames = stack.split(";")
        if not any("_run_module_as_main" in f for f in frames[:3]):
            continue  # another thread (py-spy --idle samples every thread): only the event loop's counts
        total += n
        inner = frames[-1]
        if any(w in inner for w in ("select (selectors.py", "poll (selectors.py")) or "_run_once" in inner:
            idle += n
            continue
        layers[_classify(frames)] += n
        leaf[inner] += n
        if any("build_app.<locals>.tick" in f for f in frames):
            in_tick += n
            tick[_classify(frames)] += n
    busy = max(1, total - idle)
    return {
        "samples_main_thread": total,
        "idle_share": rnd(idle / total, 3) if total else None,
        "tick_share_of_busy": rnd(in_tick / busy, 3),
        "busy_by_layer": [{"layer": k, "share_of_busy": rnd(v / busy, 3)} for k, v in layers.most_common(15)],
        "tick_by_layer": [{"layer": k, "share_of_busy": rnd(v / busy, 3)} for k, v in tick.most_common(8)],
        "busy_top_leaf_frames": [{"frame": k, "share_of_busy": rnd(v / busy, 3)} for k, v in leaf.most_common(20)],
        "raw": str(raw.resolve().relative_to(RESULTS.parents[1])),
    }


def run(b: Broker | None, *, scale: int, tick_every: int, worker_events: int, worker_seconds: int) -> dict[str, Any]:
    log(f"profile: cProfile of InProcessScorer over a simulated hour (floor x{scale})")
    out: dict[str, Any] = {"inprocess": inprocess_profile(scale, tick_every)}
    if b is not None:
        log(f"profile: py-spy of a real worker for {worker_seconds} s")
        out["worker"] = pyspy_worker(b, scale, worker_events, worker_seconds)
    return out


def what_if(b: Broker, *, scale: int, events: int, rounds: int, cap_s: float,
            settings: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The same worker on the same topic under other settings (environment only, no code change), alternated."""
    from .common import median
    from .throughput import PARTITIONS, run_scorer

    topic = f"bench.whatif.{uuid.uuid4().hex[:6]}"
    b.create_topic(topic, PARTITIONS)
    model = scaled_floor(scale, seed=19)
    recs: list[tuple[bytes, bytes]] = []
    t = START_MS
    while len(recs) < events:
        t += 60_000
        recs.extend(records_of(model.events_until(t)))
    asyncio.run(prefill(b.bootstrap, topic, recs))
    runs: dict[str, list[dict[str, Any]]] = {"default": [], **{k: [] for k in settings}}
    for i in range(rounds):
        for name, env in [("default", {}), *settings.items()]:
            res = asyncio.run(run_scorer(b, topic, len(recs), cap_s, extra_env=env))
            log(f"  what-if round {i + 1} {name}: {res}")
            runs[name].append(res)
    med = {k: {"events_per_s": median([r.get("events_per_s") for r in v]),
               "cpu_us_per_event": median([r.get("cpu_us_per_event") for r in v])} for k, v in runs.items()}
    base = med["default"]["events_per_s"]
    return {"settings": settings, "median": med, "runs": runs,
            "speedup": {k: rnd(v["events_per_s"] / base, 3) if base and v["events_per_s"] else None
                        for k, v in med.items()}}
