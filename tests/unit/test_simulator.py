"""The traffic simulator: the pure floor model (contract, determinism, legal conversations, load
behaviour) and the CLI's HTTP behaviour against mock transports and a real signal."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.events import parse_event
from services.simulator.__main__ import default_start_ms, parse_args, retry_after_s, run, server_reason
from services.simulator.model import AFTERSALES, PRESALES, Event, FloorModel, ShopSpec, SimConfig

START = 1_800_000_000_000  # 2027-01-15T08:00:00Z
REPO = Path(__file__).resolve().parents[2]


def simulate(seconds: float, step_s: float = 1.0, **overrides: Any) -> tuple[FloorModel, list[Event]]:
    model = FloorModel(SimConfig(start_ms=START, **overrides))
    events: list[Event] = []
    t = START
    end = START + round(seconds * 1000)
    while t < end:
        t = min(end, t + round(step_s * 1000))
        events.extend(model.events_until(t))
    return model, events


@cache
def peak_run() -> tuple[Event, ...]:
    """Ten minutes of a peak day at the default floor: the shared fixture of the legality tests."""
    return tuple(simulate(600, peak=True)[1])


def by_conversation(events: list[Event] | tuple[Event, ...]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event["type"] != "agent.status":
            out[event["conversation_id"]].append(event)
    return out


def check_conversation(events: list[Event]) -> None:
    """The order of one conversation's events is one a real floor could produce."""
    cid = events[0].get("conversation_id")
    assert events[0]["type"] == "conversation.opened", cid
    queue = events[0]["queue"]
    assignee: str | None = None
    ever_assigned = human_replied = bot_spoke = handed_off = closed = rated = False
    last_ts = events[0]["ts"]
    for event in events[1:]:
        etype = event["type"]
        assert not closed, f"{cid}: {etype} after conversation.closed"
        assert event["ts"] >= last_ts, cid
        last_ts = event["ts"]
        assert event["queue"] == queue, f"{cid}: {etype} carries queue {event['queue']}, current {queue}"
        assert etype != "conversation.opened", f"{cid} opened twice"
        if etype == "message":
            if event["sender"] == "agent":
                assert assignee is not None, f"{cid}: agent message while unassigned"
                assert event["agent_id"] == assignee, f"{cid}: message from {event['agent_id']}, not {assignee}"
                human_replied = True
            elif event["sender"] == "bot":
                assert not ever_assigned and not handed_off, f"{cid}: bot message after humans took over"
                bot_spoke = True
        elif etype == "conversation.handoff":
            assert bot_spoke and not handed_off and not ever_assigned, cid
            handed_off = True
        elif etype == "conversation.assigned":
            assert assignee is None, f"{cid}: assigned twice without a transfer"
            assert not bot_spoke or handed_off, f"{cid}: assigned while the bot serves"
            assignee, ever_assigned = event["agent_id"], True
        elif etype == "conversation.transferred":
            assert assignee is not None and human_replied, cid
            assert event["to_queue"] != queue, cid
            queue, assignee = event["to_queue"], None
        elif etype == "order.placed":
            assert human_replied and queue == PRESALES, cid
            assert event["currency"] == "CNY", cid
        elif etype == "csat.rated":
            assert not rated, f"{cid} rated twice"
            rated = True
        elif etype == "conversation.closed":
            closed = True
            reason = event["reason"]
            if reason == "bot_resolved":
                assert bot_spoke and not ever_assigned, cid
            elif reason == "abandoned":
                assert not human_replied, f"{cid}: abandoned after a human reply"
            elif reason == "resolved":
                assert human_replied, cid
            else:
                assert reason == "timeout", cid


# ------------------------------------------------------------------- the model


def test_same_seed_same_events_whatever_the_slicing() -> None:
    _, fine = simulate(240, step_s=0.25, peak=True, peak_start_s=30, peak_minutes=2)
    _, coarse = simulate(240, step_s=60, peak=True, peak_start_s=30, peak_minutes=2)
    _, other_seed = simulate(240, step_s=60, seed=8, peak=True, peak_start_s=30, peak_minutes=2)
    assert len(fine) > 1000
    assert fine == coarse
    assert orjson.dumps(fine) == orjson.dumps(coarse)  # the same key order too
    assert fine != other_seed


def test_event_ids_unique_and_runs_started_apart_never_collide() -> None:
    events = peak_run()
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    assert all(1 <= len(i) <= 128 for i in ids)
    other_run = FloorModel(SimConfig(start_ms=START + 1)).events_until(START + 600_001)
    assert not set(ids) & {e["event_id"] for e in other_run}


def test_every_event_passes_the_contract_as_normalised_records() -> None:
    events = peak_run()
    types = Counter(e["type"] for e in events)
    assert set(types) == {
        "conversation.opened",
        "message",
        "conversation.assigned",
        "conversation.handoff",
        "conversation.transferred",
        "conversation.closed",
        "csat.rated",
        "order.placed",
        "agent.status",
    }
    for event in events:
        parsed = parse_event(event)
        assert type(event["ts"]) is int
        assert parsed.to_record() == event, event  # already normalised: nothing for ingest to rewrite


def test_events_come_out_in_time_order_and_only_up_to_t() -> None:
    model = FloorModel(SimConfig(start_ms=START, peak=True))
    previous = START
    last_ts = 0
    for step_ms in (1, 999, 5_000, 250, 60_000, 1, 30_000):
        t = previous + step_ms
        batch = model.events_until(t)
        assert all(previous <= e["ts"] <= t for e in batch)
        assert [e["ts"] for e in batch] == sorted(e["ts"] for e in batch)
        assert not batch or batch[0]["ts"] >= last_ts
        last_ts = batch[-1]["ts"] if batch else last_ts
        previous = t
        assert model.now_ms == t
    assert model.events_until(previous - 10_000) == []  # the past is done


def test_each_conversation_follows_a_legal_order() -> None:
    conversations = by_conversation(peak_run())
    assert len(conversations) > 1000
    for events in conversations.values():
        check_conversation(events)


def test_floor_shape_tenants_platforms_queues() -> None:
    events = peak_run()
    assert {e["tenant"] for e in events} == {"acme", "lumi"}
    assert {e["platform"] for e in events} == {"taobao", "tmall", "jd", "pdd", "douyin", "web"}
    assert len({e["shop_id"] for e in events}) == 6
    assert {e["queue"] for e in events if "queue" in e} == {PRESALES, AFTERSALES}
    reasons = Counter(e["reason"] for e in events if e["type"] == "conversation.closed")
    assert set(reasons) == {"resolved", "bot_resolved", "abandoned", "timeout"}


def test_agents_log_in_take_breaks_and_never_exceed_capacity() -> None:
    events = peak_run()
    statuses = [e for e in events if e["type"] == "agent.status"]
    first: dict[str, Event] = {}
    for e in statuses:
        first.setdefault(e["agent_id"], e)
    assert all(e["status"] == "online" and e["ts"] == START for e in first.values())
    assert all(3 <= e["capacity"] <= 5 and e["queues"] for e in first.values())
    seen = Counter(e["status"] for e in statuses)
    assert seen["away"] > 0 and seen["busy"] > 0 and seen["online"] > len(first)
    assert "offline" not in seen

    status: dict[str, Event] = {}
    active: Counter[str] = Counter()
    holder: dict[str, str] = {}
    peak_active: Counter[str] = Counter()
    for e in events:
        etype = e["type"]
        if etype == "agent.status":
            status[e["agent_id"]] = e
        elif etype == "conversation.assigned":
            agent = status[e["agent_id"]]
            assert agent["status"] == "online", "assigned to an agent not taking chats"
            assert e["queue"] in agent["queues"] and agent["shop_id"] == e["shop_id"]
            if e["conversation_id"] in holder:  # transferred: the old agent held it until now
                active[holder[e["conversation_id"]]] -= 1
            holder[e["conversation_id"]] = e["agent_id"]
            active[e["agent_id"]] += 1
            assert active[e["agent_id"]] <= agent["capacity"]
            peak_active[e["agent_id"]] = max(peak_active[e["agent_id"]], active[e["agent_id"]])
        elif etype == "conversation.closed" and e["conversation_id"] in holder:
            active[holder.pop(e["conversation_id"])] -= 1
    # Under the peak, agents really run full.
    assert sum(peak_active[a] == status[a]["capacity"] for a in status) > len(status) // 2


def test_rates_of_the_floor() -> None:
    events = peak_run()
    conversations = by_conversation(events)
    closed = [c for c in conversations.values() if c[-1]["type"] == "conversation.closed"]
    rated = sum(any(e["type"] == "csat.rated" for e in c) for c in closed)
    assert 0.18 < rated / len(closed) < 0.4
    presales_answered = [
        c
        for c in closed
        if c[0]["queue"] == PRESALES
        and c[-1]["queue"] == PRESALES
        and any(e["type"] == "message" and e["sender"] == "agent" for e in c)
    ]
    ordered = sum(any(e["type"] == "order.placed" for e in c) for c in presales_answered)
    assert 0.14 < ordered / len(presales_answered) < 0.26
    customers = Counter(
        sum(e["type"] == "message" and e["sender"] == "customer" for e in c) for c in conversations.values()
    )
    assert customers[0] < 0.05 * len(conversations)  # just opened at the end of the run
    assert max(customers) >= 4


def test_arrivals_are_poisson_at_the_base_rate() -> None:
    model, events = simulate(600, base_rate=2.0)
    opened = [e["ts"] for e in events if e["type"] == "conversation.opened"]
    assert 1080 < len(opened) < 1320  # 1200 ± 3.5 sigma
    gaps = [(b - a) / 1000 for a, b in pairwise(opened)]
    mean = sum(gaps) / len(gaps)
    share_short = sum(g < mean for g in gaps) / len(gaps)
    assert 0.58 < share_short < 0.7  # exponential gaps: P(gap < mean) = 1 - 1/e ≈ 0.63
    assert model.stats().opened == len(opened)


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_peak_doubles_arrivals_in_the_peak_window(seed: int) -> None:
    base_rate = 5.0
    model, events = simulate(360, step_s=30, seed=seed, base_rate=base_rate, peak=True, peak_start_s=60, peak_minutes=4)
    # The window is 60..300 s; ramps take 20% at each end, so the plateau is 108..252 s.
    assert model.peak_factor(START + 30_000) == 1.0
    assert model.peak_factor(START + 180_000) == pytest.approx(2.0)
    assert model.peak_factor(START + 84_000) == pytest.approx(1.5)

    def rate(lo_s: float, hi_s: float) -> float:
        n = sum(
            e["type"] == "conversation.opened" and START + lo_s * 1000 <= e["ts"] < START + hi_s * 1000 for e in events
        )
        return float(n) / (hi_s - lo_s)

    before, plateau, after = rate(0, 60), rate(108, 252), rate(300, 360)
    assert plateau / base_rate == pytest.approx(2.0, rel=0.12)
    assert (before + after) / 2 / base_rate == pytest.approx(1.0, rel=0.15)
    assert rate(60, 300) / base_rate == pytest.approx(1.8, rel=0.12)  # ramps: mean factor 1.8


def test_rate_factor_scales_arrivals() -> None:
    _, events = simulate(300, rate_factor=1.5)
    opened = sum(e["type"] == "conversation.opened" for e in events)
    assert opened / 300 == pytest.approx(3.0, rel=0.1)


def test_peak_raises_waits_and_utilisation_with_the_same_agents() -> None:
    def run_floor(**overrides: Any) -> tuple[int, float, set[str]]:
        model = FloorModel(SimConfig(start_ms=START, **overrides))
        worst_waiting, worst_utilisation, agents = 0, 0.0, set()
        for second in range(1, 301):
            for e in model.events_until(START + second * 1000):
                if e["type"] == "agent.status":
                    agents.add(e["agent_id"])
            stats = model.stats()
            worst_waiting = max(worst_waiting, stats.waiting)
            worst_utilisation = max(worst_utilisation, stats.slots_active / stats.slots_capacity)
        return worst_waiting, worst_utilisation, agents

    quiet_waiting, quiet_utilisation, quiet_agents = run_floor()
    peak_waiting, peak_utilisation, peak_agents = run_floor(peak=True, peak_start_s=60, peak_minutes=3)
    assert quiet_agents == peak_agents  # agents do not scale up
    assert quiet_utilisation < 0.85 < peak_utilisation
    assert peak_waiting > 3 * max(1, quiet_waiting)


def test_abandonment_when_agents_are_overloaded() -> None:
    _, calm = simulate(600)
    _, overload = simulate(600, rate_factor=3.0)

    def abandon_rate(events: list[Event]) -> float:
        closes = Counter(e["reason"] for e in events if e["type"] == "conversation.closed")
        return closes["abandoned"] / sum(closes.values())

    assert abandon_rate(calm) < 0.03
    assert abandon_rate(overload) > 0.15
    for events in by_conversation(overload).values():
        check_conversation(events)


def test_stats_track_the_floor() -> None:
    model = FloorModel(SimConfig(start_ms=START, rate_factor=4.0))
    events = model.events_until(START + 300_000)
    stats = model.stats()
    opened = sum(e["type"] == "conversation.opened" for e in events)
    closed = sum(e["type"] == "conversation.closed" for e in events)
    assert stats.opened == opened and stats.closed == closed and stats.open == opened - closed
    assert stats.events == len(events)
    assert stats.waiting > 0  # four times the floor's load: the queues build
    assert 0 < stats.slots_active <= stats.slots_capacity
    assert stats.now_ms == START + 300_000


def test_no_arrivals_at_rate_zero_and_config_is_checked() -> None:
    model = FloorModel(SimConfig(start_ms=START, rate_factor=0.0))
    events = model.events_until(START + 600_000)
    assert events and {e["type"] for e in events} == {"agent.status"}
    with pytest.raises(ValueError):
        SimConfig(start_ms=1_800_000_000)  # seconds, not milliseconds
    with pytest.raises(ValueError):
        SimConfig(start_ms=START, shops=(ShopSpec("a", "t", "jd", 1.0, 0),))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    rate_factor=st.floats(0.2, 4.0),
    peak=st.booleans(),
    peak_start_s=st.floats(0, 120),
    step_s=st.floats(0.05, 90),
)
def test_any_parameters_give_contract_valid_legal_traffic(
    seed: int, rate_factor: float, peak: bool, peak_start_s: float, step_s: float
) -> None:
    kwargs: dict[str, Any] = {
        "seed": seed,
        "rate_factor": rate_factor,
        "peak": peak,
        "peak_start_s": peak_start_s,
        "peak_minutes": 1.0,
    }
    _, events = simulate(180, step_s=step_s, **kwargs)
    _, again = simulate(180, step_s=30, **kwargs)
    assert events == again
    ids = set()
    for event in events:
        assert parse_event(event).to_record() == event
        ids.add(event["event_id"])
    assert len(ids) == len(events)
    for conversation in by_conversation(events).values():
        check_conversation(conversation)


# ------------------------------------------------------------------- the CLI


def cli_args(*extra: str) -> Any:
    return parse_args(["--ingest", "http://ingest.test", "--token", "t0k", "--start-ms", str(START), *extra])


class FakeIngest:
    """Answers from a script of status codes, then 202; records every request body."""

    def __init__(self, script: list[int | Exception] | None = None, retry_after: str = "0") -> None:
        self.script = list(script or [])
        self.retry_after = retry_after
        self.bodies: list[list[Event]] = []
        self.seen: set[str] = set()
        self.auth: set[str | None] = set()
        self.paths: set[str] = set()

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.paths.add(request.url.path)
        self.auth.add(request.headers.get("authorization"))
        batch = orjson.loads(request.content)
        self.bodies.append(batch)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if step == 503:
                return httpx.Response(503, headers={"Retry-After": self.retry_after}, json={"detail": "kafka"})
            return httpx.Response(step, json={"detail": f"scripted {step}", "errors": []})
        fresh = [e["event_id"] for e in batch if e["event_id"] not in self.seen]
        self.seen.update(fresh)
        return httpx.Response(202, json={"accepted": len(fresh), "duplicates": len(batch) - len(fresh)})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


async def test_cli_fast_run_delivers_the_model_exactly() -> None:
    ingest = FakeIngest()
    out = io.StringIO()
    code = await run(
        cli_args("--fast", "--duration-s", "120", "--batch", "50"), transport=ingest.transport(), stream=out
    )
    assert code == 0
    model = FloorModel(SimConfig(start_ms=START))
    expected = model.events_until(START + 120_000)
    delivered = [e for body in ingest.bodies for e in body]
    assert delivered == expected
    assert all(len(body) <= 50 for body in ingest.bodies)
    assert ingest.auth == {"Bearer t0k"} and ingest.paths == {"/v1/events"}
    assert f"sent {len(expected):,} events" in out.getvalue()


async def test_cli_retries_503_and_connection_errors_with_the_same_event_ids() -> None:
    ingest = FakeIngest([503, httpx.ConnectError("refused"), 503, 429])
    out = io.StringIO()
    code = await run(
        cli_args("--fast", "--duration-s", "30"), transport=ingest.transport(), stream=out, backoff_base_s=0.01
    )
    assert code == 0
    first = ingest.bodies[0]
    assert all(body == first for body in ingest.bodies[:5])  # four refusals, then the same batch lands
    assert len(ingest.seen) == sum(len(b) for b in ingest.bodies[4:])
    text = out.getvalue()
    assert "ingest answered 503" in text and "4 retries" in text


def test_retry_after_is_honoured_in_seconds_and_dates() -> None:
    assert retry_after_s(httpx.Response(503, headers={"Retry-After": "7"})) == 7.0
    assert retry_after_s(httpx.Response(503)) is None
    assert retry_after_s(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= (retry_after_s(httpx.Response(503, headers={"Retry-After": date})) or 0) <= 31
    assert retry_after_s(httpx.Response(503, headers={"Retry-After": "999999"})) == 300.0


async def test_cli_waits_as_long_as_retry_after_says() -> None:
    ingest = FakeIngest([503], retry_after="1")
    began = time.monotonic()
    code = await run(cli_args("--fast", "--duration-s", "5"), transport=ingest.transport(), stream=io.StringIO())
    assert code == 0
    assert time.monotonic() - began >= 0.95


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422])
async def test_cli_stops_on_4xx_with_the_servers_reason(status: int) -> None:
    ingest = FakeIngest([status])
    out = io.StringIO()
    code = await run(cli_args("--fast", "--duration-s", "60"), transport=ingest.transport(), stream=out)
    assert code == 1
    assert len(ingest.bodies) == 1  # no retry
    assert f": {status} " in out.getvalue() and f"scripted {status}" in out.getvalue()


def test_cli_flags_and_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_URL", "http://elsewhere:9000")
    monkeypatch.setenv("INGEST_TOKEN", "from-env")
    args = parse_args([])
    assert args.ingest == "http://elsewhere:9000" and args.token == "from-env"
    assert (args.seed, args.rate_factor, args.peak, args.batch, args.fast) == (7, 1.0, False, 200, False)
    assert (args.peak_start_s, args.peak_minutes, args.duration_s) == (60.0, 3.0, None)
    monkeypatch.delenv("INGEST_URL")
    monkeypatch.delenv("INGEST_TOKEN")
    args = parse_args(["--fast", "--peak", "--peak-start-s", "5", "--peak-minutes", "1", "--rate-factor", "2"])
    assert args.ingest == "http://127.0.0.1:8081" and args.token is None
    assert args.fast and args.peak and args.peak_start_s == 5 and args.rate_factor == 2
    with pytest.raises(SystemExit):
        parse_args(["--fast", "--realtime"])
    with pytest.raises(SystemExit):
        parse_args(["--batch", "0"])


def test_a_bounded_fast_run_ends_now_and_others_start_now() -> None:
    now_ms = time.time() * 1000
    assert abs(default_start_ms(parse_args(["--fast", "--duration-s", "600"])) - (now_ms - 600_000)) < 5_000
    assert abs(default_start_ms(parse_args(["--fast"])) - now_ms) < 5_000
    assert abs(default_start_ms(parse_args(["--duration-s", "600"])) - now_ms) < 5_000


def test_server_reason_names_the_bad_events() -> None:
    body = {
        "detail": "2 of 200 events are invalid; 198 accepted",
        "errors": [{"index": 3, "event_id": "x-1", "reason": "ts is 9 min in the future"}],
        "accepted": 198,
        "duplicates": 0,
    }
    reason = server_reason(httpx.Response(422, json=body))
    assert reason.startswith("2 of 200 events are invalid") and "x-1" in reason and "9 min" in reason
    assert server_reason(httpx.Response(401, json={"detail": "missing or wrong bearer token"})) == (
        "missing or wrong bearer token"
    )
    assert server_reason(httpx.Response(400, text="plain words")) == "plain words"
    assert server_reason(httpx.Response(400)) == "(empty body)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_cli_against_nothing() -> subprocess.Popen[str]:
    port = _free_port()  # nothing listens: every POST is a connection error, retried
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.simulator", "--ingest", f"http://127.0.0.1:{port}", "--fast"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    banner = proc.stderr.readline()  # printed once the signal handlers are in place
    assert banner.startswith("simulating run"), banner
    return proc


def _finish(proc: subprocess.Popen[str]) -> str:
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err


def test_cli_exits_cleanly_on_sigterm_while_ingest_is_down() -> None:
    proc = _start_cli_against_nothing()
    time.sleep(0.5)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc)
    assert proc.returncode == 0, err
    assert time.monotonic() - began < 8  # the 5 s grace to deliver, then out
    assert "Traceback" not in err
    assert "ingest unreachable" in err and "stopping" in err and "done: sent 0 events" in err
    assert "generated events not delivered" in err


def test_cli_second_ctrl_c_quits_at_once() -> None:
    proc = _start_cli_against_nothing()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    err = _finish(proc)
    assert proc.returncode == 130, err
    assert time.monotonic() - began < 3
    assert "Traceback" not in err and "interrupted: sent 0 events" in err


async def test_cli_realtime_sends_events_as_they_happen() -> None:
    ingest = FakeIngest()
    out = io.StringIO()
    args = parse_args(["--ingest", "http://ingest.test", "--duration-s", "1.5", "--rate-factor", "5"])
    began_ms = time.time() * 1000
    code = await asyncio.wait_for(run(args, transport=ingest.transport(), stream=out), 10)
    assert code == 0
    delivered = [e for body in ingest.bodies for e in body]
    assert delivered and all(began_ms - 50 <= e["ts"] <= time.time() * 1000 for e in delivered)
    assert len(ingest.bodies) > 1  # sent as it went, not in one go
    assert ingest.auth == {None}  # no token, no header
