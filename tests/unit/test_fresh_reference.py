"""The scorer against tests/fresh_reference.py (a model written afresh from METRICS.md), for floors delivered
the way platforms deliver: shuffled across minutes, retried, 2-5 minutes late while other traffic moves the
watermark on, with mixed agent capacities, transfers after orders, queues spanning shops and agents changing
status out of order.

Every published field of every view is compared, on the union of both sides' keys (a field on one side only is
a failure, `as_of` aside): counts exactly, means and rates to 1e-9 relative, percentiles within the 2% the
log bins promise (20 ms below 1 s). Below the properties, one hand-worked case per defect of issue 10.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.core.figures import QueueView
from services.core.scope import Scope, queue_total
from services.scorer.inprocess import InProcessScorer
from tests.fresh_reference import WINDOWS, agent_figures, build_floor, reference_views

DAY = 1_800_000_000_000  # 2027-01-15T08:00:00Z = 16:00 China time: every platform counts
NIGHT = DAY + 6 * 3_600_000 + 50 * 60_000  # 22:50 China time: the counted hours end at 23:00
MORNING = DAY - 7 * 3_600_000 + 52 * 60_000  # 08:52 China time: JD starts counting at 09:00, PDD/Taobao at 08:00
QUEUES = ("presales", "aftersales", "vip")
PLATFORMS = ("jd", "taobao", "pdd", "tmall", "web")
REASONS = ("resolved", "abandoned", "timeout", "bot_resolved")
STATUSES = ("online", "busy", "away", "offline")
PERCENTILES = {"p50_s", "p90_s", "wait_p50_s", "wait_p90_s"}
NOT_COMPARED = {"as_of"}

# Derandomized for CI; no shrinking: a failure reports its differences tallied by field (below), and shrinking a
# floor through the scorer would take minutes on two shared cores.
PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- floors ------------------------------------------------------------------------------------

@dataclass
class Delivery:
    events: list[dict[str, Any]]  # what happened (unique event ids)
    batches: list[list[dict[str, Any]]]  # what the scorer is fed, batch by batch (a tick after each)


gaps = st.one_of(
    st.just(0), st.integers(1, 5_000), st.integers(5_000, 60_000), st.integers(60_000, 240_000),
    st.sampled_from([1_000, 30_000, 30_001, 100_000, 100_001, 180_000, 180_001]),
)


@st.composite
def a_conversation(draw: st.DrawFn, cid: str, shop: tuple[str, str, str], agents: Sequence[str], start: int,
                   end: int) -> list[dict[str, Any]]:
    tenant, shop_id, platform = shop
    t = start + draw(st.integers(0, end - start))
    out: list[dict[str, Any]] = []
    who = [*agents, "nobody"] if agents else ["nobody"]  # "nobody" sends no status: counts in no queue's staff

    def add(etype: str, gap: int, **extra: Any) -> None:
        nonlocal t
        t += gap
        if t > end:
            return
        out.append({"event_id": f"{cid}-{draw(st.integers(0, 9))}{len(out):02d}", "type": etype, "ts": t,
                    "tenant": tenant, "shop_id": shop_id, "platform": platform, "conversation_id": cid, **extra})

    queue = draw(st.sampled_from(QUEUES))
    how = draw(st.sampled_from(["opened", "opened", "message", "unknown_then_opened", "handoff_first"]))
    if how == "opened":
        add("conversation.opened", 0, queue=queue)
        add("message", draw(gaps), sender="customer", chars=12)
    elif how == "message":
        add("message", 0, sender="customer", queue=queue)
    elif how == "unknown_then_opened":
        add("message", 0, sender="customer")
        add("conversation.opened", draw(gaps), queue=queue)
    else:  # a bot served the buyer, then handed off
        add("conversation.opened", 0, queue=queue)
        add("message", draw(gaps), sender="customer")
        add("message", draw(gaps), sender="bot")
        add("conversation.handoff", draw(gaps))
    for step in draw(st.lists(st.sampled_from(
            ["customer", "customer", "agent", "agent", "agent", "bot", "assign", "transfer", "order_then_transfer",
             "order", "csat", "handoff"]), max_size=9)):
        gap = draw(gaps)
        if step == "customer":
            add("message", gap, sender="customer")
        elif step == "agent":
            add("message", gap, sender="agent", agent_id=draw(st.sampled_from(who)))
        elif step == "bot":
            add("message", gap, sender="bot")
        elif step == "assign":
            add("conversation.assigned", gap, agent_id=draw(st.sampled_from(who)))
        elif step == "transfer":
            add("conversation.transferred", gap, to_queue=draw(st.sampled_from(QUEUES)))
        elif step == "order_then_transfer":  # the order stays with the queue that sold; the next queue replies
            add("order.placed", gap, amount="59.00", currency="CNY")
            add("conversation.transferred", draw(gaps), to_queue=draw(st.sampled_from(QUEUES)),
                to_agent_id=draw(st.sampled_from(who)))
            add("message", draw(gaps), sender="agent", agent_id=draw(st.sampled_from(who)))
        elif step == "order":
            add("order.placed", gap, amount="20.00", currency="CNY")
        elif step == "csat":
            add("csat.rated", gap, score=draw(st.integers(1, 5)))
        else:
            add("conversation.handoff", gap)
    if draw(st.booleans()):
        add("conversation.closed", 1 + draw(gaps), reason=draw(st.sampled_from(REASONS)))
        for step in draw(st.lists(st.sampled_from(["csat", "order", "agent", "customer"]), max_size=2)):
            if step == "csat":
                add("csat.rated", 1 + draw(gaps), score=draw(st.integers(1, 5)))
            elif step == "order":
                add("order.placed", 1 + draw(gaps), amount="5", currency="CNY")
            elif step == "agent":
                add("message", 1 + draw(gaps), sender="agent", agent_id=draw(st.sampled_from(who)))
            else:
                add("message", 1 + draw(gaps), sender="customer")
    return out


@st.composite
def deliveries(draw: st.DrawFn, max_conversations: int = 24) -> Delivery:
    base = draw(st.sampled_from([DAY, NIGHT, MORNING])) + draw(st.integers(0, 59_999))
    end = base + draw(st.sampled_from([3 * 60_000, 12 * 60_000, 40 * 60_000, 62 * 60_000]))
    shops = draw(st.lists(st.tuples(st.sampled_from(["acme", "bolt"]), st.sampled_from(["s1", "s2"]),
                                    st.sampled_from(PLATFORMS)),
                          min_size=1, max_size=3, unique_by=lambda s: (s[0], s[1])))
    events: list[dict[str, Any]] = []
    staff: dict[tuple[str, str, str], list[str]] = {}
    for n, shop in enumerate(shops):
        staff[shop] = [f"a{n}{i}" for i in range(draw(st.integers(0, 3)))]
        for agent in staff[shop]:
            capacity = draw(st.sampled_from([1, 2, 3, 3]))  # mixed capacities, e.g. 2, 3, 3
            queues = draw(st.lists(st.sampled_from(QUEUES), min_size=1, max_size=3, unique=True))
            for i in range(draw(st.integers(1, 4))):
                events.append({
                    "event_id": f"st-{agent}-{i}", "type": "agent.status",
                    "ts": base + draw(st.integers(0, end - base)), "tenant": shop[0], "shop_id": shop[1],
                    "platform": shop[2], "agent_id": agent, "status": draw(st.sampled_from(STATUSES)),
                    "capacity": capacity, "queues": queues,
                })
    for i in range(draw(st.integers(1, max_conversations))):
        shop = draw(st.sampled_from(shops))
        events += draw(a_conversation(f"c{i}", shop, staff[shop], base, end))
    if not events:
        events.append({"event_id": "lone", "type": "message", "ts": base, "tenant": shops[0][0],
                       "shop_id": shops[0][1], "platform": shops[0][2], "conversation_id": "lone",
                       "sender": "customer"})

    # Delivery: arrival time = ts + delay. Retried copies arrive again with their own delay. An "outage"
    # holds back whole conversations (and agents' statuses) and delivers them 2-5 minutes late, shuffled,
    # while the rest of the floor flows on time and moves the watermark.
    rnd = draw(st.randoms(use_true_random=False))
    mode = draw(st.sampled_from(["outage", "outage", "scattered", "shuffled_minutes", "in_order"]))
    retry_share = draw(st.sampled_from([0.0, 0.15, 0.5]))
    held = {e.get("conversation_id") or e.get("agent_id") for e in events if rnd.random() < 0.35}
    release: dict[Any, float] = {}
    for e in events:
        k = e.get("conversation_id") or e.get("agent_id")
        release[k] = max(release.get(k, 0), e["ts"])

    def delay(e: dict[str, Any]) -> float:
        k = e.get("conversation_id") or e.get("agent_id")
        if mode == "in_order":
            return 0
        if mode == "outage":
            if k in held:
                return float(release[k] - e["ts"] + rnd.uniform(120_000, 300_000))
            return rnd.uniform(0, 2_000)
        if mode == "scattered":
            r = rnd.random()
            return rnd.uniform(120_000, 300_000) if r < 0.15 else rnd.uniform(0, 60_000) if r < 0.4 else 0
        return rnd.uniform(0, 300_000)  # everything shuffled across five minutes

    copies = [(e["ts"] + delay(e), rnd.random(), e) for e in events]
    copies += [(e["ts"] + delay(e), rnd.random(), e) for e in events if rnd.random() < retry_share]
    stream = [dict(e) for _, _, e in sorted(copies, key=lambda c: (c[0], c[1]))]
    ticks = sorted(rnd.sample(range(1, len(stream)), k=min(len(stream) - 1, draw(st.integers(0, 6)))))
    batches = [stream[a:b] for a, b in zip([0, *ticks], [*ticks, len(stream)], strict=True)]
    return Delivery(events, batches)


# --- running and comparing -----------------------------------------------------------------------

def run_scorer(batches: Iterable[Sequence[Mapping[str, Any]]], **kwargs: Any) -> dict[Scope, QueueView]:
    """Feed batch by batch under the event clock (the wall clock handed to tick changes nothing)."""
    scorer = InProcessScorer(**kwargs)
    views: dict[Scope, QueueView] = {}
    for batch in batches:
        scorer.feed([dict(e) for e in batch])
        views.update(scorer.tick(0))
    assert not scorer.dead_letters
    assert scorer.queues.merger.store.narrowed_puts == 0  # no rebuild here: stage 1 never narrows
    # What is published at the end: a view that went since (its tombstone published) is not on the board.
    return {k: v for k, v in views.items() if k in scorer.queues.latest}


def leaf_matches(leaf: str, got: Any, want: Any) -> bool:
    if got is None or want is None or isinstance(got, str | bool) or isinstance(want, str | bool):
        return bool(got == want)
    if leaf in PERCENTILES:
        return bool(abs(got - want) <= 0.02 * max(abs(want), 1.0) + 1e-9)
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def diff_views(got: Mapping[Scope, Any], want: Mapping[Scope, Any], sides: tuple[str, str]) -> list[str]:
    """Every difference between two runs' views: a view only one published, and every field (`as_of` aside)."""
    problems: list[str] = []
    for key in sorted(got.keys() | want.keys(), key=str):
        if key not in got or key not in want:
            problems.append(f"{key}: view published only {sides[1] if key in want else sides[0]}")
            continue
        diff_tree(str(key), got[key], want[key], problems, sides)
    return problems


def diff_tree(path: str, got: Any, want: Any, out: list[str],
              sides: tuple[str, str] = ("production", "reference")) -> None:
    """Every difference between two views, walking the union of their keys (`as_of` aside)."""
    if isinstance(got, dict) or isinstance(want, dict):
        if not (isinstance(got, dict) and isinstance(want, dict)):
            out.append(f"{path}: {sides[0]} {got!r}, {sides[1]} {want!r}")
            return
        for name in sorted(set(got) | set(want)):
            if name in NOT_COMPARED:
                continue
            if name not in got:
                out.append(f"{path}.{name}: only in the {sides[1]} ({want[name]!r})")
            elif name not in want:
                out.append(f"{path}.{name}: only in the {sides[0]} ({got[name]!r})")
            else:
                diff_tree(f"{path}.{name}", got[name], want[name], out, sides)
    elif isinstance(got, list) or isinstance(want, list):
        if not (isinstance(got, list) and isinstance(want, list)) or len(got) != len(want):
            out.append(f"{path}: {sides[0]} {got!r}, {sides[1]} {want!r}")
            return
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            diff_tree(f"{path}[{i}]", g, w, out, sides)
    elif not leaf_matches(path.rsplit(".", 1)[-1].split("[")[0], got, want):
        out.append(f"{path}: {sides[0]} {got!r}, {sides[1]} {want!r}")


def stated_spans(views: Mapping[Scope, Mapping[str, Any]], problems: list[str]) -> dict[str, int] | None:
    """The span each window states (`span_s`), if production states one: it must lie in [W, W + W/60]
    (METRICS.md: the lower edge may be rounded to a grid of at most W/60), and the reference then counts over
    exactly that span."""
    spans: dict[str, int] = {}
    for name, width in WINDOWS.items():
        seen = {round(v["windows"][name]["span_s"] * 1000) for v in views.values()
                if "span_s" in v.get("windows", {}).get(name, {})}
        if not seen:
            continue
        if len(seen) > 1:
            problems.append(f"window {name}: views state different spans at one now: {sorted(seen)}")
        span = max(seen)
        if not width <= span <= width + width // 60:
            problems.append(f"window {name}: span_s {span / 1000} outside [{width / 1000}, {width * 61 / 60000}]")
        spans[name] = span
    return spans or None


def compare(events: Sequence[Mapping[str, Any]], got: Mapping[Scope, Mapping[str, Any]]) -> list[str]:
    """Every difference between production's views and the reference's, on the union of keys."""
    problems: list[str] = []
    # `judged` is the alert rules' reading published with a view (alert_judging.judged), not a METRICS.md figure:
    # tests/unit/test_judged_views.py checks it against the alerts the engine raises.
    queue_views = {k: {f: x for f, x in v.items() if f != "judged"} for k, v in got.items()
                   if not k.queue.startswith("@agent:")}
    spans = stated_spans(queue_views, problems)
    want = reference_views(events, keys=queue_views.keys(), spans_ms=spans)
    for key in sorted(want.keys() | queue_views.keys()):
        if key not in queue_views:
            problems.append(f"{key}: view only in the reference")
            continue
        diff_tree(str(key), queue_views[key], want[key], problems)
    # Agent views: the figures METRICS.md names for agents (time per status, max concurrent chats, messages
    # sent, FRT and reply counts), for agents with a status.
    floor = build_floor(events)
    for (tenant, agent_id), facts in floor.agents.items():
        key = Scope(*facts.scope, queue=f"@agent:{agent_id}")
        if key not in got:
            problems.append(f"{key}: agent view missing in production")
            continue
        figures = agent_figures(events, agent_id, spans_ms=spans, tenant=tenant)
        for name, mine in figures.items():
            theirs = got[key]["windows"][name]
            projected = {
                "status_seconds": theirs.get("status_seconds"), "max_concurrent": theirs.get("max_concurrent"),
                "messages_agent": theirs.get("messages", {}).get("agent"),
                "frt_count": theirs.get("frt", {}).get("count"), "reply_count": theirs.get("reply", {}).get("count"),
            }
            diff_tree(f"{key}.windows.{name}", projected, mine, problems)
    return problems


def classes(problems: Iterable[str]) -> str:
    """A tally of the differences by field, to read a failure at a glance."""
    tally: Counter[str] = Counter()
    for p in problems:
        path = p.split(":", 1)[0].split(")", 1)[-1]
        for name in WINDOWS:
            path = path.replace(f".windows.{name}.", ".windows.W.")
        tally[path] += 1
    return "\n".join(f"{n:5d}  {path}" for path, n in tally.most_common())


def assert_same(events: Sequence[Mapping[str, Any]], got: Mapping[Scope, Mapping[str, Any]]) -> None:
    problems = compare(events, got)
    assert not problems, "by field:\n" + classes(problems) + "\nfirst differences:\n" + "\n".join(problems[:30])


# --- properties --------------------------------------------------------------------------------

@PROPERTY
@given(deliveries())
def test_every_published_figure_equals_the_fresh_reference(delivery: Delivery) -> None:
    assert_same(delivery.events, run_scorer(delivery.batches))


@settings(PROPERTY, max_examples=15)
@given(deliveries(max_conversations=12))
def test_the_same_events_in_order_give_the_same_views(delivery: Delivery) -> None:
    """Order and lateness never change a number: the delivered stream and the same set in event order, on one
    partition, publish the same views (every field but as_of), whatever the reference says."""
    in_order = sorted(delivery.events, key=lambda e: (e["ts"], e["event_id"]))
    shuffled = run_scorer(delivery.batches, event_partitions=1, queue_partitions=1)
    ordered = run_scorer([in_order], event_partitions=1, queue_partitions=1)
    problems = diff_views(shuffled, ordered, ("shuffled", "in order"))
    assert not problems, "\n".join(problems[:30])


def test_the_generator_delivers_late_shuffled_and_retried() -> None:
    """Not vacuous: events arrive minutes after later events, retried, with mixed capacities and transfers
    after orders, queues spanning shops, and status events out of order."""
    seen = dict.fromkeys(["late_2min", "retried", "mixed_capacity", "transfer_after_order", "multi_shop_queue",
                          "status_out_of_order", "night", "long"], False)

    # 200 examples: with 60, whether one floor over 40 minutes came up depended on what ran before in the process
    # (all the other flags were reached either way).
    @settings(PROPERTY, max_examples=200)
    @given(deliveries())
    def probe(d: Delivery) -> None:
        stream = [e for b in d.batches for e in b]
        newest = -1
        for e in stream:
            seen["late_2min"] |= newest - e["ts"] > 120_000
            newest = max(newest, e["ts"])
        ids = [e["event_id"] for e in stream]
        seen["retried"] |= len(ids) > len(set(ids))
        caps = {e["capacity"] for e in d.events if e["type"] == "agent.status"}
        seen["mixed_capacity"] |= len(caps) > 1
        by_conv: dict[str, list[str]] = {}
        for e in sorted(d.events, key=lambda e: e["ts"]):
            if "conversation_id" in e:
                by_conv.setdefault(e["conversation_id"], []).append(e["type"])
        seen["transfer_after_order"] |= any(
            "order.placed" in ts and "conversation.transferred" in ts[ts.index("order.placed"):]
            for ts in by_conv.values())
        shops_of: dict[str, set[str]] = {}
        for e in d.events:
            if e["type"] == "conversation.opened":
                shops_of.setdefault(e["queue"], set()).add(e["shop_id"])
        seen["multi_shop_queue"] |= any(len(s) > 1 for s in shops_of.values())
        last: dict[str, int] = {}
        for e in stream:
            if e["type"] == "agent.status":
                seen["status_out_of_order"] |= e["ts"] < last.get(e["agent_id"], -1)
                last[e["agent_id"]] = max(last.get(e["agent_id"], -1), e["ts"])
        seen["night"] |= min(e["ts"] for e in d.events) >= NIGHT
        seen["long"] |= max(e["ts"] for e in d.events) - min(e["ts"] for e in d.events) > 40 * 60_000

    probe()
    assert all(seen.values()), seen


def test_a_field_on_one_side_only_is_a_difference() -> None:
    """Defect 9: the comparison walks the union of keys, so a scorer-only field is compared too."""
    out: list[str] = []
    diff_tree("v", {"live": {"open": 1, "extra": 2}, "as_of": "x"}, {"live": {"open": 1, "mine": 3}, "as_of": "y"},
              out)
    assert out == ["v.live.extra: only in the production (2)", "v.live.mine: only in the reference (3)"]


# --- hand-worked cases: each checks the reference against figures worked by hand, then production --------

T = DAY


def ev(eid: str, etype: str, t_s: float, cid: str = "c", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": eid, "type": etype, "ts": T + round(t_s * 1000), "tenant": "acme",
                           "shop_id": "s1", "platform": "jd", **extra}
    if etype != "agent.status":
        out["conversation_id"] = cid
    return out


def status(eid: str, t_s: float, agent: str, state: str, capacity: int = 2,
           queues: Sequence[str] = ("presales",)) -> dict[str, Any]:
    return ev(eid, "agent.status", t_s, agent_id=agent, status=state, capacity=capacity, queues=list(queues))


def traffic(n: int, start_s: float, every_s: float, prefix: str = "o") -> list[dict[str, Any]]:
    """Other conversations on the floor (queue `other`): they move the watermark on."""
    return [ev(f"{prefix}{i}", "conversation.opened", start_s + i * every_s, cid=f"{prefix}{i}", queue="other")
            for i in range(n)]


ALL = queue_total("presales")


def window_of(views: Mapping[Scope, Mapping[str, Any]], name: str = "5m", key: Scope = ALL) -> dict[str, Any]:
    return dict(views[key]["windows"][name])


def live_of(views: Mapping[Scope, Mapping[str, Any]], key: Scope = ALL) -> dict[str, Any]:
    return dict(views[key]["live"])


def reference_of(events: Sequence[Mapping[str, Any]]) -> dict[Scope, dict[str, Any]]:
    return reference_views(events)


def test_the_reference_on_the_events_md_example() -> None:
    """EVENTS.md: FRT 17.5 s (19 - 1.5); the conversation is assigned, open and answered."""
    events = [
        ev("0001", "conversation.opened", 1, queue="presales"),
        ev("0002", "message", 1.5, sender="customer", chars=18),
        ev("0003", "conversation.assigned", 4, agent_id="a-12"),
        ev("0004", "message", 19, sender="agent", agent_id="a-12", chars=40),
    ]
    want = reference_of(events)
    w = window_of(want, "1m")
    assert (w["frt"]["count"], w["frt"]["mean_s"], w["reply"]["mean_s"], w["sl"]["30"]) == (1, 17.5, 17.5, 1.0)
    assert (live_of(want)["open"], live_of(want)["unanswered"], live_of(want)["awaiting_reply"]) == (1, 0, 0)
    assert_same(events, run_scorer([events]))


def test_the_reference_on_handoffs_bots_and_bot_resolved() -> None:
    """A bot served the buyer from 0 s, handed off at 40 s, a human replied at 55 s: FRT 15 s from the handoff.
    A second buyer closed bot_resolved with no human: outside SL and abandonment. A third, implicitly opened by
    a message in vip, abandoned after 30 s: SL30 over vip 0/1, abandon rate 1."""
    events = [
        ev("a1", "conversation.opened", 0, cid="a", queue="presales"),
        ev("a2", "message", 0, cid="a", sender="customer"),
        ev("a3", "message", 2, cid="a", sender="bot"),
        ev("a4", "conversation.handoff", 40, cid="a"),
        ev("a5", "message", 55, cid="a", sender="agent", agent_id="x"),
        ev("b1", "message", 10, cid="b", sender="customer", queue="presales"),
        ev("b2", "message", 11, cid="b", sender="bot"),
        ev("b3", "conversation.closed", 20, cid="b", reason="bot_resolved"),
        ev("c1", "message", 20, cid="c", sender="customer", queue="vip"),
        ev("c2", "conversation.closed", 50, cid="c", reason="abandoned"),
        ev("d1", "conversation.opened", 60, cid="d", queue="other"),
    ]
    want = reference_of(events)
    w = window_of(want)
    assert (w["frt"]["mean_s"], w["left_unanswered"], w["sl"]["30"], w["abandoned"]) == (15.0, 1, 1.0, 0)
    assert (w["self_service_rate"], w["closed"], w["arrivals"]) == (1.0, 1, 2)
    vip = window_of(want, key=queue_total("vip"))
    assert (vip["arrivals"], vip["sl"]["30"], vip["abandon_rate"], vip["patience_s"]) == (1, 0.0, 1.0, 30.0)
    assert_same(events, run_scorer([events]))


def test_defect_1_a_shuffled_conversation_keeps_its_own_order_after_other_traffic() -> None:
    """A conversation ~2 min old, delivered reversed after other traffic on its partition moved the watermark
    on: FRT 10 s (not 80 s), both replies counted, SL30 1.0, nobody waiting."""
    conv = [ev("c1", "conversation.opened", 0, queue="presales"), ev("c2", "message", 0, sender="customer"),
            ev("c3", "message", 10, sender="agent", agent_id="a1"), ev("c4", "message", 70, sender="customer"),
            ev("c5", "message", 80, sender="agent", agent_id="a1")]
    other = traffic(20, 0, 10)  # up to 190 s
    events = other + conv
    for views in (reference_of(events), run_scorer([other, list(reversed(conv))], event_partitions=1)):
        w = window_of(views)
        assert (w["frt"]["count"], w["frt"]["mean_s"], w["reply"]["count"], w["sl"]["30"]) == (1, 10.0, 2, 1.0)
        assert live_of(views)["awaiting_reply"] == 0
    assert_same(events, run_scorer([other, list(reversed(conv))], event_partitions=1))


def test_defect_2_a_late_customer_message_older_than_the_reply_is_not_a_waiting_buyer() -> None:
    conv = [ev("c1", "message", 0, sender="customer", queue="presales"),
            ev("c3", "message", 10, sender="agent", agent_id="a1")]
    # A webhook retry delivers, after 3 minutes of other traffic, a rating and a customer message older than
    # the reply: the buyer was answered, nobody waits (and no page).
    late = [ev("c4", "csat.rated", 5, score=5), ev("c2", "message", 3, sender="customer")]
    other = traffic(19, 10, 10)
    events = [*conv, *other, *late]
    got = run_scorer([conv + other + late], event_partitions=1)
    for views in (reference_of(events), got):
        assert (live_of(views)["awaiting_reply"], live_of(views)["oldest_wait_s"]) == (0, None)
        assert window_of(views)["reply"]["mean_s"] == 10.0
    assert_same(events, got)


def test_defect_3_agent_time_follows_event_time_not_arrival() -> None:
    """online@0, away@100 s delivered, then busy@50 s: online 50 s, busy 50 s, away 50 s at now = 150 s."""
    first = [status("s1", 0, "a1", "online"), status("s3", 100, "a1", "away")]
    later = [status("s2", 50, "a1", "busy")]
    tail = [ev("c1", "conversation.opened", 150, queue="presales")]
    events = first + later + tail
    want = {"online": 50.0, "busy": 50.0, "away": 50.0, "offline": 0.0}
    assert agent_figures(events, "a1")["5m"]["status_seconds"] == want
    got = run_scorer([first, tail, later])
    assert got[Scope("acme", "s1", "jd", "@agent:a1")]["windows"]["5m"]["status_seconds"] == want
    assert_same(events, got)


def test_defect_3_max_concurrent_follows_event_time() -> None:
    """a1 replies at 100 s to a conversation that was transferred to a2 at 10 s: a1 never held it (max 0,
    a2 1), even when the reply arrives before the transfer."""
    events = [
        status("s1", 0, "a1", "online"), status("s2", 0, "a2", "online"),
        ev("c1", "message", 0, sender="customer", queue="presales"),
        ev("c2", "conversation.transferred", 10, to_queue="presales", to_agent_id="a2"),
        ev("c3", "message", 100, sender="agent", agent_id="a1"),
    ]
    assert [agent_figures(events, a)["5m"]["max_concurrent"] for a in ("a1", "a2")] == [0, 1]
    got = run_scorer([events[:3], [events[4]], [events[3]]])
    assert [got[Scope("acme", "s1", "jd", f"@agent:{a}")]["windows"]["5m"]["max_concurrent"]
            for a in ("a1", "a2")] == [0, 1]
    assert_same(events, got)


def test_defect_4_capacities_2_3_3_are_8_slots_of_concurrency_8_thirds() -> None:
    events = [*(status(f"s{i}", 0, f"a{i}", "online", capacity=c) for i, c in enumerate([2, 3, 3])),
              ev("c1", "conversation.opened", 1, queue="presales")]
    got = run_scorer([events])
    for views in (reference_of(events), got):
        live = live_of(views)
        assert (live["agents_serving"], live["slots_capacity"]) == (3, 8)
        assert math.isclose(live["concurrency"], 8 / 3, rel_tol=1e-12)
    assert_same(events, got)


def test_defect_5_one_waiting_buyer_pages_once() -> None:
    """The queue across shops and that queue in its only shop are the same buyers: one oldest_wait alert."""
    scorer = InProcessScorer()
    scorer.feed([ev("c1", "message", 0, sender="customer", queue="presales")])
    scorer.tick(0)
    for e in traffic(25, 10, 10):  # time passes on the event clock: 250 s
        scorer.feed([e])
        scorer.tick(0)
    alerts = [orjson.loads(a.value) for a in scorer.alerts if a.value and not a.key.startswith(b"__")]
    firing = {a["id"] for a in alerts if a["rule"] == "oldest_wait" and a["queue"] == "presales"}
    assert len(firing) == 1, sorted(firing)


def test_defect_6_a_window_is_no_longer_than_its_span() -> None:
    """now = 1002.5 s. An arrival at 941 s is 61.5 s old: outside "1m" whatever the grid (at most 1 s for 1m,
    so the window starts at 942 s at the earliest). One at 70 s is 932.5 s old: outside "15m" (grid at most
    15 s: it starts at 90 s at the earliest). Rates divide by the stated span."""
    events = [ev("c1", "conversation.opened", 70, queue="presales"),
              ev("c2", "conversation.opened", 941, cid="d", queue="presales"),
              ev("c3", "conversation.opened", 1002.5, cid="e", queue="presales")]
    got = run_scorer([events])
    for views in (reference_of(events), got):
        windows = views[ALL]["windows"]
        assert (windows["1m"]["arrivals"], windows["15m"]["arrivals"]) == (1, 2)
        assert "span_s" in windows["1m"], "the window states no span"
        assert math.isclose(windows["1m"]["arrivals_per_min"], 60 / windows["1m"]["span_s"], rel_tol=1e-9)
    assert_same(events, got)


def test_defect_7_conversion_counts_per_conversation_and_queue() -> None:
    """Presales replied to 3 buyers and 2 ordered there, then went on to aftersales, which replied: presales 2/3,
    aftersales 0/2. An order in a queue that never replied to that buyer counts nowhere (vip: 0/1)."""
    events: list[dict[str, Any]] = []
    for n, orders in (("x", True), ("y", True), ("z", False)):
        events += [ev(f"{n}1", "message", 0, cid=n, sender="customer", queue="presales"),
                   ev(f"{n}2", "message", 5, cid=n, sender="agent", agent_id="a1")]
        if orders:
            events += [ev(f"{n}3", "order.placed", 20, cid=n, amount="10", currency="CNY"),
                       ev(f"{n}4", "conversation.transferred", 30, cid=n, to_queue="aftersales"),
                       ev(f"{n}5", "message", 40, cid=n, sender="agent", agent_id="a2")]
    events += [ev("v1", "message", 0, cid="v", sender="customer", queue="vip"),
               ev("v2", "order.placed", 20, cid="v", amount="10", currency="CNY"),
               ev("w1", "conversation.opened", 5, cid="w", queue="vip"),
               ev("w2", "message", 100, cid="w", sender="agent", agent_id="a3")]
    got = run_scorer([events])
    for views in (reference_of(events), got):
        assert math.isclose(window_of(views)["conversion_rate"], 2 / 3, rel_tol=1e-12)
        assert window_of(views, key=queue_total("aftersales"))["conversion_rate"] == 0.0
        assert window_of(views, key=queue_total("vip"))["conversion_rate"] == 0.0
    assert_same(events, got)


def test_defect_8_jd_counts_the_buyers_left_waiting_in_its_hours() -> None:
    """JD at 16:00 China time: one answered in 10 s (met), one abandoned after 20 s (a miss at the close), one
    still waiting 45 s (a miss since 30 s passed). JD's 30 s rule does not count a session started at 23:30."""
    events = [
        ev("a1", "message", 0, cid="a", sender="customer", queue="presales"),
        ev("a2", "message", 10, cid="a", sender="agent", agent_id="x"),
        ev("b1", "message", 0, cid="b", sender="customer", queue="presales"),
        ev("b2", "conversation.closed", 20, cid="b", reason="abandoned"),
        ev("c1", "message", 5, cid="c", sender="customer", queue="presales"),
        ev("d1", "conversation.opened", 50, cid="d", queue="other"),
    ]
    got = run_scorer([events])
    for views in (reference_of(events), got):
        assert window_of(views)["platform_rule"] == {"counted": 3, "met": 1, "met_rate": 1 / 3}
    assert_same(events, got)

    night = [dict(e, ts=e["ts"] + 7 * 3_600_000 + 30 * 60_000) for e in events]  # 23:30 China time
    got = run_scorer([night])
    for views in (reference_of(night), got):
        assert window_of(views)["platform_rule"]["counted"] == 0
    assert_same(night, got)


def test_defect_8_pdd_counts_each_buyer_once_and_the_ones_waiting_past_three_minutes() -> None:
    events = [dict(e, platform="pdd") for e in [
        ev("a1", "message", 0, cid="a", sender="customer", queue="presales"),
        ev("a2", "message", 200, cid="a", sender="agent", agent_id="x"),  # answered late: a miss since 180 s
        ev("b1", "message", 10, cid="b", sender="customer", queue="presales"),
        ev("b2", "message", 100, cid="b", sender="agent", agent_id="x"),  # within 3 min: met
        ev("b3", "message", 110, cid="b", sender="customer"),
        ev("b4", "message", 120, cid="b", sender="agent", agent_id="x"),  # the same buyer again: not counted twice
        ev("c1", "message", 15, cid="c", sender="customer", queue="presales"),  # waiting 205 s: a miss
    ]]
    got = run_scorer([events])
    for views in (reference_of(events), got):
        assert window_of(views)["platform_rule"] == {"counted": 3, "met": 1, "met_rate": 1 / 3}
    assert_same(events, got)


def test_an_event_older_than_the_horizon_for_an_evicted_conversation_is_too_old() -> None:
    """A rating 70 min old for a conversation closed (and evicted) long ago is counted too_old and changes no
    figure; a message 4 minutes late for an open conversation lands where it belongs."""
    conv = [ev("c1", "message", 0, sender="customer", queue="presales"),
            ev("c2", "message", 10, sender="agent", agent_id="x"),
            ev("c3", "conversation.closed", 20, reason="resolved")]
    other = traffic(15, 0, 300)  # 70 min of traffic
    live = [ev("d1", "message", 4000, cid="d", sender="customer", queue="presales"),
            ev("d3", "message", 4180, cid="d", sender="agent", agent_id="x")]
    late = [ev("c4", "csat.rated", 30, score=2), ev("d2", "message", 4150, cid="d", sender="customer")]
    events = conv + other + live + late
    scorer = InProcessScorer(event_partitions=1)
    views: dict[Scope, QueueView] = {}
    for batch in (conv, other[:8], other[8:], live, late):
        scorer.feed(batch)
        views.update(scorer.tick(0))
    assert scorer.metrics.events.labels("too_old")._value.get() == 1
    for v in (reference_of(events), views):
        assert (window_of(v)["reply"]["count"], window_of(v)["reply"]["mean_s"]) == (1, 180.0)
    assert_same(events, views)
