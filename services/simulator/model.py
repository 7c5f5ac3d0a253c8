"""A deterministic model of a customer-service floor's chat traffic (event contract v1, EVENTS.md).

Pure: no I/O and no wall clock. Time is passed in: `FloorModel(SimConfig(start_ms=...))` starts the
floor at `start_ms`, and `events_until(t_ms)` advances the simulation to `t_ms` and returns what
happened meanwhile, in event-time order, as event dicts exactly per the contract (`ts` is integer
epoch milliseconds). Same config (seed included) -> the same event list, whatever the slicing of the
`events_until` calls.

What the floor does (numbers from DESIGN.md and the field):
- Tenants run shops on several platforms; every shop has `presales` and `aftersales` skill queues
  and its own agents (capacity 3-5 concurrent chats). Agents come `online` at the start, now and
  then take a break (`away`) or stop taking new chats for a while (`busy`), then come back.
- Buyers arrive as a Poisson process (thinning), base rate x `rate_factor`; with `peak` the rate
  ramps up to `peak_multiplier` (2x) over the peak window and back down. Agents do not scale up.
- A buyer opens a conversation, writes 1-4 messages. Some are answered by the shop bot first; the bot
  either resolves the chat (`bot_resolved`) or hands off (`conversation.handoff`) to humans.
- Chats waiting for a human are assigned FIFO to the least-loaded agent of the shop who serves the
  queue, is `online` and has a free slot; when none has, the buyer waits and the queue builds.
- Agents reply after a lognormal delay (median ~7 s, slower the more chats they hold, faster on JD).
- A buyer leaves when a wait for a reply exceeds their patience (lognormal, median 150 s): closed
  `abandoned` if no human ever replied, else `timeout`. Some go silent and the chat times out.
- Some presales chats are transferred to aftersales (no `to_agent_id`: the agent keeps the chat
  and its slot until an aftersales agent is assigned); ~20% of answered presales chats place an
  order (CNY); ~30% of closed chats are rated (worse after long waits); chats close `resolved`.

Ids: conversations are `{run_id}-{shop_id}-{n:06d}`, their events `{conversation_id}-{k:03d}`;
agents are `{shop_id}-a{i:02d}` and their status events `{run_id}-{agent_id}-s{k:04d}`. The run id
defaults to `s{seed}-{start_ms:x}`, so a rerun with the same seed and start replays the same ids
(safe retries, dedup tests) while runs started at other times never collide.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

from services.core.events import MAX_EPOCH_MS, MIN_EPOCH_MS

PRESALES: Final = "presales"
AFTERSALES: Final = "aftersales"
QUEUES: Final = (PRESALES, AFTERSALES)

Event = dict[str, Any]

# Which queues agent i of a shop serves, by i mod 7: mostly presales, some aftersales, a few both.
_SKILL_PATTERN: Final = (
    (PRESALES,),
    (AFTERSALES,),
    (PRESALES,),
    (PRESALES, AFTERSALES),
    (PRESALES,),
    (AFTERSALES,),
    (PRESALES,),
)
_CAPACITIES: Final = (3, 4, 4, 5, 3, 4, 5)
_MSGS_PER_BUYER: Final = ((1, 2, 3, 4), (0.3, 0.35, 0.2, 0.15))
_CSAT_HAPPY: Final = (0.04, 0.04, 0.08, 0.22, 0.62)  # P(score = 1..5) after short waits
_CSAT_SLOW: Final = (0.07, 0.07, 0.14, 0.27, 0.45)  # after a wait over 100 s
_CSAT_ANGRY: Final = (0.13, 0.12, 0.2, 0.25, 0.3)  # after a wait over 5 minutes
_SCORES: Final = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class ShopSpec:
    shop_id: str
    tenant: str
    platform: str
    weight: float  # share of the floor's arrivals (normalised over all shops)
    agents: int
    bot: bool = True  # a shop bot answers some chats first
    reply_speed: float = 1.0  # multiplier on agents' reply delays (< 1: faster)


DEFAULT_SHOPS: Final = (
    ShopSpec("acme-tmall", "acme", "tmall", 0.24, 14),
    ShopSpec("acme-jd", "acme", "jd", 0.20, 11, reply_speed=0.6),  # drilled for JD's 30 s rule
    ShopSpec("acme-pdd", "acme", "pdd", 0.16, 9),
    ShopSpec("acme-douyin", "acme", "douyin", 0.12, 7, bot=False),
    ShopSpec("lumi-taobao", "lumi", "taobao", 0.18, 10),
    ShopSpec("lumi-web", "lumi", "web", 0.10, 6, bot=False),
)


@dataclass(frozen=True, slots=True)
class SimConfig:
    start_ms: int  # epoch milliseconds of the floor's start: all agents log in then
    seed: int = 7
    base_rate: float = 2.0  # conversations per second across the floor
    rate_factor: float = 1.0
    peak: bool = False
    peak_start_s: float = 60.0  # seconds after start
    peak_minutes: float = 3.0
    peak_multiplier: float = 2.0
    peak_ramp_share: float = 0.2  # share of the window spent ramping up, and again ramping down
    shops: tuple[ShopSpec, ...] = DEFAULT_SHOPS
    presales_share: float = 0.6
    bot_share: float = 0.35  # of chats in shops with a bot
    bot_resolve_share: float = 0.45  # of bot chats: closed bot_resolved without a human
    transfer_share: float = 0.06  # of answered presales chats: moved to aftersales
    order_share: float = 0.2  # of answered presales chats
    csat_share: float = 0.3
    silent_share: float = 0.05  # buyers who stop answering mid-chat (closed timeout)
    patience_median_s: float = 150.0
    reply_median_s: float = 7.0
    break_every_s: float = 600.0  # mean time between an agent's breaks (away) or busy spells
    idle_close_s: float = 180.0  # a chat whose buyer went silent closes timeout after this
    run_id: str | None = None

    def __post_init__(self) -> None:
        if not MIN_EPOCH_MS <= self.start_ms <= MAX_EPOCH_MS:
            raise ValueError(f"start_ms {self.start_ms} must be epoch milliseconds")
        if self.base_rate < 0 or self.rate_factor < 0:
            raise ValueError("base_rate and rate_factor must be >= 0")
        if self.peak and (self.peak_minutes <= 0 or self.peak_multiplier <= 0):
            raise ValueError("peak_minutes and peak_multiplier must be > 0")
        if not 0 <= self.peak_ramp_share <= 0.5:
            raise ValueError("peak_ramp_share must be within 0..0.5")
        if not self.shops or any(s.weight <= 0 or s.agents < 1 for s in self.shops):
            raise ValueError("every shop needs a positive weight and at least one agent")
        if len({s.shop_id for s in self.shops}) != len(self.shops):
            raise ValueError("shop ids must be unique")
        if self.patience_median_s <= 0 or self.reply_median_s <= 0 or self.break_every_s <= 0:
            raise ValueError("patience_median_s, reply_median_s and break_every_s must be > 0")

    @property
    def max_rate(self) -> float:
        return self.base_rate * self.rate_factor * (max(1.0, self.peak_multiplier) if self.peak else 1.0)


@dataclass(frozen=True, slots=True)
class FloorStats:
    now_ms: int
    events: int  # emitted so far
    opened: int
    closed: int
    abandoned: int
    open: int  # opened and not closed
    waiting: int  # want a human and no agent has them yet
    agents_online: int  # status online (taking chats)
    slots_active: int
    slots_capacity: int  # over agents online or busy
    peak_factor: float  # current multiplier of the arrival rate from the peak shape (1.0 outside)


@dataclass(slots=True, eq=False)
class _Agent:
    agent_id: str
    shop: ShopSpec
    capacity: int
    queues: tuple[str, ...]
    index: int
    status: str = "online"
    active: int = 0
    last_assigned_ms: int = -1
    n_status: int = 0


@dataclass(slots=True, eq=False)
class _Conv:
    conv_id: str
    shop: ShopSpec
    queue: str
    patience_ms: int
    msgs_left: int  # customer messages still to come
    bot: bool
    bot_resolves: bool
    phase: str = "new"  # new | bot | waiting | assigned | closed
    agent: _Agent | None = None
    answered: bool = False  # a human replied at least once
    awaiting: bool = False  # the buyer's last message has no answer yet
    wait_seq: int = 0  # bumps at every new wait; stale patience timers compare against it
    wait_start_ms: int = 0
    max_wait_ms: int = 0
    assign_seq: int = 0  # bumps at every assignment; stale agent actions compare against it
    reply_pending: bool = False
    transferred: bool = False
    queued_ms: int = 0
    n_events: int = 0


_Action = Callable[[Any, int], None]


class FloorModel:
    """The simulated floor. Not thread-safe; deterministic for a given `SimConfig`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        cfg = config
        self.run_id = cfg.run_id or f"s{cfg.seed}-{cfg.start_ms:x}"
        self._rng = random.Random(cfg.seed)
        self._now = cfg.start_ms
        self._heap: list[tuple[int, int, _Action, Any, int]] = []
        self._seq = 0
        self._out: list[Event] = []
        self._shops = cfg.shops
        self._cum_weights = list(accumulate(s.weight for s in cfg.shops))
        self._max_rate_per_ms = cfg.max_rate / 1000.0
        self._arrival_clock = float(cfg.start_ms)
        self._agents: list[_Agent] = []
        self._by_shop_queue: dict[tuple[str, str], list[_Agent]] = {}
        self._waiting: dict[tuple[str, str], deque[_Conv]] = {}
        for shop in cfg.shops:
            for queue in QUEUES:
                self._by_shop_queue[(shop.shop_id, queue)] = []
                self._waiting[(shop.shop_id, queue)] = deque()
            for i in range(shop.agents):
                agent = _Agent(
                    agent_id=f"{shop.shop_id}-a{i + 1:02d}",
                    shop=shop,
                    capacity=_CAPACITIES[i % len(_CAPACITIES)],
                    queues=_SKILL_PATTERN[i % len(_SKILL_PATTERN)],
                    index=len(self._agents),
                )
                self._agents.append(agent)
                for queue in agent.queues:
                    self._by_shop_queue[(shop.shop_id, queue)].append(agent)
        self._n_conv = 0
        self._n_events = 0
        self._n_closed = 0
        self._n_abandoned = 0
        self._n_waiting = 0
        self._at(cfg.start_ms, self._floor_opens, None)

    # ---------------------------------------------------------------- public API

    @property
    def now_ms(self) -> int:
        """The simulation clock: the latest time `events_until` advanced to."""
        return self._now

    def events_until(self, t_ms: int) -> list[Event]:
        """Advance the floor to `t_ms` (inclusive) and return the events that happened, in ts order."""
        out: list[Event] = []
        self._out = out
        heap = self._heap
        while heap and heap[0][0] <= t_ms:
            t, _, action, obj, token = heapq.heappop(heap)
            self._now = t
            action(obj, token)
        self._now = max(self._now, t_ms)
        self._n_events += len(out)
        self._out = []
        return out

    def peak_factor(self, t_ms: int | None = None) -> float:
        """The peak shape's multiplier of the arrival rate at `t_ms` (default: now): 1.0 outside the window."""
        cfg = self.config
        if not cfg.peak:
            return 1.0
        t = self._now if t_ms is None else t_ms
        u = ((t - cfg.start_ms) / 1000.0 - cfg.peak_start_s) / (cfg.peak_minutes * 60.0)
        if not 0.0 <= u <= 1.0:
            return 1.0
        ramp = cfg.peak_ramp_share
        shape = 1.0 if ramp == 0 else min(1.0, u / ramp, (1.0 - u) / ramp)
        return 1.0 + (cfg.peak_multiplier - 1.0) * shape

    def arrival_rate(self, t_ms: int | None = None) -> float:
        """Expected conversations per second across the floor at `t_ms` (default: now)."""
        cfg = self.config
        return cfg.base_rate * cfg.rate_factor * self.peak_factor(t_ms)

    def stats(self) -> FloorStats:
        slots_active = slots_capacity = online = 0
        for agent in self._agents:
            if agent.status in ("online", "busy"):
                slots_capacity += agent.capacity
                slots_active += agent.active
            if agent.status == "online":
                online += 1
        return FloorStats(
            now_ms=self._now,
            events=self._n_events,
            opened=self._n_conv,
            closed=self._n_closed,
            abandoned=self._n_abandoned,
            open=self._n_conv - self._n_closed,
            waiting=self._n_waiting,
            agents_online=online,
            slots_active=slots_active,
            slots_capacity=slots_capacity,
            peak_factor=self.peak_factor(),
        )

    # ---------------------------------------------------------------- machinery

    def _at(self, t_ms: int, action: _Action, obj: Any, token: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t_ms, self._seq, action, obj, token))

    def _after_s(self, delay_s: float, action: _Action, obj: Any, token: int = 0) -> None:
        self._at(self._now + max(1, round(delay_s * 1000.0)), action, obj, token)

    def _lognormal_s(self, median_s: float, sigma: float, low_s: float, high_s: float) -> float:
        value = median_s * math.exp(sigma * self._rng.gauss(0.0, 1.0))
        return min(high_s, max(low_s, value))

    def _uniform_s(self, low_s: float, high_s: float) -> float:
        return self._rng.uniform(low_s, high_s)

    def _conv_event(self, conv: _Conv, etype: str, **extra: Any) -> None:
        conv.n_events += 1
        shop = conv.shop
        event: Event = {
            "event_id": f"{conv.conv_id}-{conv.n_events:03d}",
            "type": etype,
            "ts": self._now,
            "tenant": shop.tenant,
            "shop_id": shop.shop_id,
            "platform": shop.platform,
            "conversation_id": conv.conv_id,
            "queue": conv.queue,
        }
        event.update(extra)
        self._out.append(event)

    def _status_event(self, agent: _Agent) -> None:
        agent.n_status += 1
        shop = agent.shop
        self._out.append(
            {
                "event_id": f"{self.run_id}-{agent.agent_id}-s{agent.n_status:04d}",
                "type": "agent.status",
                "ts": self._now,
                "tenant": shop.tenant,
                "shop_id": shop.shop_id,
                "platform": shop.platform,
                "agent_id": agent.agent_id,
                "status": agent.status,
                "capacity": agent.capacity,
                "queues": list(agent.queues),
            }
        )

    # ---------------------------------------------------------------- agents

    def _floor_opens(self, _obj: None, _token: int) -> None:
        for agent in self._agents:
            self._status_event(agent)
            self._after_s(self._rng.expovariate(1.0 / self.config.break_every_s), self._break_starts, agent)
        self._schedule_arrival()

    def _break_starts(self, agent: _Agent, _token: int) -> None:
        if self._rng.random() < 0.6:
            agent.status, length_s = "away", self._uniform_s(30.0, 180.0)
        else:
            agent.status, length_s = "busy", self._uniform_s(20.0, 90.0)
        self._status_event(agent)
        self._after_s(length_s, self._break_ends, agent)

    def _break_ends(self, agent: _Agent, _token: int) -> None:
        agent.status = "online"
        self._status_event(agent)
        self._after_s(self._rng.expovariate(1.0 / self.config.break_every_s), self._break_starts, agent)
        self._fill_slots(agent)

    def _pick_agent(self, shop_id: str, queue: str) -> _Agent | None:
        best: _Agent | None = None
        best_key = (0.0, 0, 0)
        for agent in self._by_shop_queue[(shop_id, queue)]:
            if agent.status != "online" or agent.active >= agent.capacity:
                continue
            key = (agent.active / agent.capacity, agent.last_assigned_ms, agent.index)
            if best is None or key < best_key:
                best, best_key = agent, key
        return best

    def _head(self, key: tuple[str, str]) -> _Conv | None:
        waiting = self._waiting[key]
        while waiting and waiting[0].phase != "waiting":
            waiting.popleft()  # closed while waiting; already uncounted
        return waiting[0] if waiting else None

    def _dispatch(self, shop_id: str, queue: str) -> None:
        key = (shop_id, queue)
        while (conv := self._head(key)) is not None:
            agent = self._pick_agent(shop_id, queue)
            if agent is None:
                return
            self._waiting[key].popleft()
            self._n_waiting -= 1
            self._assign(conv, agent)

    def _fill_slots(self, agent: _Agent) -> None:
        """An agent has a free slot (or came back): take the longest-waiting chat of their queues."""
        shop_id = agent.shop.shop_id
        while agent.status == "online" and agent.active < agent.capacity:
            best: _Conv | None = None
            for queue in agent.queues:
                conv = self._head((shop_id, queue))
                if conv is not None and (best is None or conv.queued_ms < best.queued_ms):
                    best = conv
            if best is None:
                return
            self._waiting[(shop_id, best.queue)].popleft()
            self._n_waiting -= 1
            self._assign(best, agent)

    def _release(self, conv: _Conv) -> None:
        agent = conv.agent
        if agent is not None:
            conv.agent = None
            agent.active -= 1
            self._fill_slots(agent)

    # ---------------------------------------------------------------- buyers

    def _schedule_arrival(self) -> None:
        if self._max_rate_per_ms <= 0:
            return
        self._arrival_clock += self._rng.expovariate(self._max_rate_per_ms)
        self._at(max(self._now, round(self._arrival_clock)), self._arrival, None)

    def _arrival(self, _obj: None, _token: int) -> None:
        # Thinning: candidates at the maximum rate, kept with probability rate(t) / max rate.
        if self._rng.random() * self.config.max_rate < self.arrival_rate():
            self._open_conversation()
        self._schedule_arrival()

    def _open_conversation(self) -> None:
        cfg, rng = self.config, self._rng
        shop = rng.choices(self._shops, cum_weights=self._cum_weights)[0]
        self._n_conv += 1
        bot = shop.bot and rng.random() < cfg.bot_share
        conv = _Conv(
            conv_id=f"{self.run_id}-{shop.shop_id}-{self._n_conv:06d}",
            shop=shop,
            queue=PRESALES if rng.random() < cfg.presales_share else AFTERSALES,
            patience_ms=round(1000 * self._lognormal_s(cfg.patience_median_s, 0.6, 20.0, 1800.0)),
            msgs_left=rng.choices(_MSGS_PER_BUYER[0], _MSGS_PER_BUYER[1])[0],
            bot=bot,
            bot_resolves=bot and rng.random() < cfg.bot_resolve_share,
        )
        channel = "web" if shop.platform == "web" else ("app" if rng.random() < 0.8 else "pc")
        customer_id = f"{shop.platform}-buyer-{rng.randrange(10**8):08d}"
        self._conv_event(conv, "conversation.opened", customer_id=customer_id, channel=channel)
        self._after_s(self._uniform_s(0.3, 4.0), self._customer_message, conv)

    def _start_wait(self, conv: _Conv) -> None:
        conv.awaiting = True
        conv.wait_seq += 1
        conv.wait_start_ms = self._now
        self._at(self._now + conv.patience_ms, self._patience_runs_out, conv, conv.wait_seq)

    def _customer_message(self, conv: _Conv, _token: int) -> None:
        if conv.phase == "closed":
            return
        rng = self._rng
        self._conv_event(conv, "message", sender="customer", chars=rng.randint(2, 80))
        conv.msgs_left = max(0, conv.msgs_left - 1)
        if conv.phase in ("new", "bot"):
            conv.awaiting = True
            if conv.bot:
                conv.phase = "bot"
                self._after_s(self._uniform_s(0.5, 2.0), self._bot_reply, conv)
            else:
                self._start_wait(conv)
                self._enqueue(conv)
            return
        if not conv.awaiting:
            self._start_wait(conv)
            if conv.phase == "assigned":
                self._schedule_reply(conv)

    def _nudge(self, conv: _Conv, token: int) -> None:
        """A waiting buyer pings ("在吗?"); it changes no clock."""
        if conv.phase in ("waiting", "assigned") and conv.awaiting and conv.wait_seq == token:
            self._conv_event(conv, "message", sender="customer", chars=self._rng.randint(2, 6))

    def _enqueue(self, conv: _Conv) -> None:
        conv.phase = "waiting"
        conv.queued_ms = self._now
        self._waiting[(conv.shop.shop_id, conv.queue)].append(conv)
        self._n_waiting += 1
        if conv.awaiting and not conv.answered and self._rng.random() < 0.4:
            self._after_s(self._uniform_s(20.0, 90.0), self._nudge, conv, conv.wait_seq)
        self._dispatch(conv.shop.shop_id, conv.queue)

    def _assign(self, conv: _Conv, agent: _Agent) -> None:
        previous = conv.agent  # after a transfer, the agent who still holds the chat
        if previous is not None:
            previous.active -= 1
        conv.phase = "assigned"
        conv.agent = agent
        conv.assign_seq += 1
        agent.active += 1
        agent.last_assigned_ms = self._now
        self._conv_event(conv, "conversation.assigned", agent_id=agent.agent_id)
        if conv.awaiting:
            self._schedule_reply(conv)
        if previous is not None and previous is not agent:
            self._fill_slots(previous)

    def _schedule_reply(self, conv: _Conv) -> None:
        agent = conv.agent
        if agent is None or conv.reply_pending:
            return
        conv.reply_pending = True
        load = 1.0 + 0.35 * max(0, agent.active - 1)
        if agent.status == "away":
            load *= 1.5
        delay_s = self._lognormal_s(self.config.reply_median_s * agent.shop.reply_speed * load, 0.7, 1.0, 90.0)
        self._after_s(delay_s, self._agent_reply, conv, conv.assign_seq)

    def _bot_reply(self, conv: _Conv, _token: int) -> None:
        if conv.phase != "bot":
            return
        rng = self._rng
        self._conv_event(conv, "message", sender="bot", chars=rng.randint(20, 200))
        conv.awaiting = False
        if conv.msgs_left > 0 and (conv.bot_resolves or rng.random() < 0.5):
            self._after_s(self._lognormal_s(8.0, 0.6, 2.0, 60.0), self._customer_message, conv)
        elif conv.bot_resolves:
            self._after_s(self._uniform_s(10.0, 40.0), self._bot_resolved, conv)
        else:
            self._after_s(self._uniform_s(2.0, 8.0), self._handoff, conv)

    def _handoff(self, conv: _Conv, _token: int) -> None:
        if conv.phase != "bot":
            return
        self._conv_event(conv, "conversation.handoff")
        self._start_wait(conv)
        self._enqueue(conv)

    def _bot_resolved(self, conv: _Conv, _token: int) -> None:
        if conv.phase != "bot":
            return
        if self._rng.random() < self.config.csat_share / 2:
            self._rate(conv)
        self._close(conv, "bot_resolved")

    def _agent_reply(self, conv: _Conv, token: int) -> None:
        if conv.phase != "assigned" or token != conv.assign_seq or conv.agent is None:
            return
        rng = self._rng
        conv.reply_pending = False
        self._conv_event(conv, "message", sender="agent", agent_id=conv.agent.agent_id, chars=rng.randint(10, 160))
        conv.answered = True
        conv.awaiting = False
        conv.max_wait_ms = max(conv.max_wait_ms, self._now - conv.wait_start_ms)
        if rng.random() < 0.25:
            self._after_s(self._uniform_s(2.0, 8.0), self._agent_follow_up, conv, token)
        cfg = self.config
        if conv.queue == PRESALES and not conv.transferred and rng.random() < cfg.transfer_share:
            self._after_s(self._uniform_s(3.0, 12.0), self._transfer, conv, token)
        elif conv.msgs_left > 0:
            if rng.random() < cfg.silent_share:
                self._after_s(cfg.idle_close_s, self._idle_close, conv, token)
            else:
                self._after_s(self._lognormal_s(12.0, 0.7, 2.0, 120.0), self._customer_message, conv)
        else:
            self._after_s(self._uniform_s(4.0, 30.0), self._wrap_up, conv, token)

    def _agent_follow_up(self, conv: _Conv, token: int) -> None:
        """A second agent message right after the reply (links, a coupon, a picture)."""
        if conv.phase == "assigned" and token == conv.assign_seq and not conv.awaiting and conv.agent:
            self._conv_event(
                conv, "message", sender="agent", agent_id=conv.agent.agent_id, chars=self._rng.randint(5, 60)
            )

    def _transfer(self, conv: _Conv, token: int) -> None:
        if conv.phase != "assigned" or token != conv.assign_seq or conv.awaiting:
            return
        self._conv_event(conv, "conversation.transferred", to_queue=AFTERSALES, reason="after-sales question")
        conv.queue = AFTERSALES
        conv.transferred = True
        conv.reply_pending = False
        conv.msgs_left = max(1, conv.msgs_left)
        # The agent keeps the chat (and its slot) until someone in the new queue takes it, as the
        # contract reads a transfer without `to_agent_id`: the assignee stays until the next assignment.
        self._enqueue(conv)
        self._after_s(self._uniform_s(2.0, 10.0), self._customer_message, conv)

    def _idle_close(self, conv: _Conv, token: int) -> None:
        if conv.phase == "assigned" and token == conv.assign_seq and not conv.awaiting:
            self._close(conv, "timeout")

    def _wrap_up(self, conv: _Conv, token: int) -> None:
        if conv.phase != "assigned" or token != conv.assign_seq or conv.awaiting:
            return
        rng = self._rng
        if conv.queue == PRESALES and rng.random() < self.config.order_share:
            amount = round(self._lognormal_s(129.0, 0.9, 9.9, 20000.0), 2)
            self._conv_event(conv, "order.placed", amount=f"{amount:.2f}", currency="CNY")
        self._after_s(self._uniform_s(3.0, 15.0), self._finish, conv, token)

    def _finish(self, conv: _Conv, token: int) -> None:
        if conv.phase != "assigned" or token != conv.assign_seq or conv.awaiting:
            return
        if self._rng.random() < self.config.csat_share:
            self._rate(conv)
        self._close(conv, "resolved")

    def _rate(self, conv: _Conv) -> None:
        if conv.max_wait_ms > 300_000:
            weights = _CSAT_ANGRY
        elif conv.max_wait_ms > 100_000:
            weights = _CSAT_SLOW
        else:
            weights = _CSAT_HAPPY
        self._conv_event(conv, "csat.rated", score=self._rng.choices(_SCORES, weights)[0])

    def _patience_runs_out(self, conv: _Conv, token: int) -> None:
        if conv.phase == "closed" or not conv.awaiting or token != conv.wait_seq:
            return
        if not conv.answered:
            self._n_abandoned += 1
        self._close(conv, "timeout" if conv.answered else "abandoned")

    def _close(self, conv: _Conv, reason: str) -> None:
        if conv.phase == "waiting":
            self._n_waiting -= 1  # it stays in its deque until it reaches the head
        conv.phase = "closed"
        self._n_closed += 1
        self._conv_event(conv, "conversation.closed", reason=reason)
        self._release(conv)
