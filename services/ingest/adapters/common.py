"""What the platform adapters share: their configuration, the result type, id and time helpers.

An adapter is a pure function `adapt(payload, ctx) -> Mapped`: one decoded webhook delivery in,
a list of contract events (plain dicts that `services.core.events.parse_event` accepts) out,
plus the names of what it acknowledged without mapping. Bad input raises `AdapterError` (the
delivery is answered 422 with its reason); nothing an adapter does may raise anything else.

Ids: every platform id is scoped by platform and account (`chatwoot:{account}:{id}`), so two
accounts never collide. An id that would be longer than the contract's 128 characters is
replaced by a hash of it (`{platform}:~{40 hex}`), deterministic like the id it stands for.

Queues: named as the platform names them (a Chatwoot team or inbox, a LiveChat group, a Sunshine
integration), normalised by `queue_id`, unless ADAPTER_QUEUE_MAP says otherwise; the platform's
id of what named the queue travels in the event as `queue_source_id` (`to_queue_source_id` for
transfers) for joins. Some names are not in every delivery (Chatwoot's conversation events carry
no inbox name and no account): `Recall` keeps what earlier deliveries said, bounded, and the
adapter reads it through the context (it never writes it: the webhook layer records
`Mapped.learned` after the delivery).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, TypeVar

import orjson

from services.core.events import MAX_EPOCH_MS, MAX_ID_LEN, MAX_NAME_LEN, MIN_EPOCH_MS

DEFAULT_QUEUE: Final = "default"
DEFAULT_TENANT: Final = "default"
MAX_PLATFORM_ID_LEN: Final = 512  # longer "ids" are refused: no platform sends those


class AdapterError(ValueError):
    """The delivery breaks what the adapter needs; `str(err)` is the reason sent back (422)."""


@dataclass
class Mapped:
    """What one delivery became: events for the batch path, names of what was acknowledged only,
    and per-event problems of a multi-event delivery (the others still go through)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # What this delivery says that later ones may leave out (`Recall` keys -> values), and the
    # queues it named per `{platform}:{account}` (default queues of that account's agents).
    learned: dict[str, str] = field(default_factory=dict)
    queues_seen: list[tuple[str, str]] = field(default_factory=list)
    # Where an assumption stood in for a missing fact: (what, how), e.g. ("account", "default");
    # the webhook layer counts and logs them (floorwatch_ingest_webhook_assumed_total).
    assumed: list[tuple[str, str]] = field(default_factory=list)


def _parse_json_object(name: str, raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a JSON object, got {raw[:80]!r}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def _name(setting: str, value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LEN or not value.isprintable():
        raise SystemExit(f"{setting}: {value!r} is not a name (1..{MAX_NAME_LEN} printable characters)")
    return value


def _csv(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


_NOT_WORD: Final = re.compile(r"[^\w.]+")


def queue_id(name: object) -> str | None:
    """A platform's name for a queue as a queue id: stable and readable, the same for the same name.

    NFKC (full-width letters and digits become plain ones), case-folded, every run of anything but
    letters, digits, `_` and `.` becomes one `-` (so no `*`, `:` or `@agent:` scope can be formed),
    no `-`/`.`/`_` at either end, at most the contract's 128 characters. Letters of every script stay
    (`售前 咨询` -> `售前-咨询`). None when nothing is left: the caller falls back to the id.
    """
    if not isinstance(name, str):
        return None
    text = _NOT_WORD.sub("-", unicodedata.normalize("NFKC", name).casefold()).strip("-._")
    return text[:MAX_NAME_LEN].rstrip("-._") or None


def _no_id(value: object) -> bool:
    """Not an id a queue can be known by (an id with control characters would be refused by the contract)."""
    return (value is None or value == "" or isinstance(value, bool) or not isinstance(value, (str, int))
            or (isinstance(value, str) and (not value.isprintable() or len(value) > MAX_PLATFORM_ID_LEN)))


class QueueRef(NamedTuple):
    """The queue of an event and the platform's id of what named it (`queue_source_id`)."""

    queue: str
    source_id: str | None


class Recall:
    """Facts earlier deliveries told that later ones leave out, bounded (least recently used go first).

    Keys: `chatwoot:inbox:{inbox}:account` (the account an inbox belongs to: Chatwoot's inbox ids
    are unique per installation), `{platform}:{account}:{kind}:{id}:name` (a team's or inbox's
    name), and per `{platform}:{account}` the queues its deliveries named. One per ingest process,
    not shared between replicas and empty after a restart: what it stands in for is documented
    where it is used (adapters/README.md).
    """

    MAX_QUEUES_PER_ACCOUNT: Final = 64  # the contract's limit of queues in one agent.status

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._facts: OrderedDict[str, str] = OrderedDict()
        self._queues: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._facts) + len(self._queues)

    def get(self, key: str) -> str | None:
        return self._facts.get(key)

    def queues(self, scope: str) -> list[str]:
        return sorted(self._queues.get(scope, ()))

    def learn(self, mapped: Mapped) -> None:
        for key, value in mapped.learned.items():
            self._facts[key] = value
            self._facts.move_to_end(key)
        for scope, queue in mapped.queues_seen:
            seen = self._queues.setdefault(scope, OrderedDict())
            self._queues.move_to_end(scope)
            seen[queue] = None
            seen.move_to_end(queue)
            while len(seen) > self.MAX_QUEUES_PER_ACCOUNT:
                seen.popitem(last=False)
        while len(self) > self.max_entries:
            (self._facts if len(self._facts) >= len(self._queues) else self._queues).popitem(last=False)


@dataclass(frozen=True)
class AdapterConfig:
    """Mapping settings shared by the adapters (env names in `from_env`, documented in README.md).

    `queue_map` keys: `{platform}:{account}:{kind}:{id}`, `{platform}:{kind}:{id}`,
    `{platform}:{account}` or `{platform}`, kind being `inbox`/`team` (Chatwoot), `group`
    (LiveChat) or `integration` (Sunshine). `tenants` keys: `{platform}:{account}` or `{platform}`.
    """

    queue_map: Mapping[str, str] = field(default_factory=dict)
    tenant: str = DEFAULT_TENANT
    tenants: Mapping[str, str] = field(default_factory=dict)
    agent_capacity: int = 5
    agent_queues: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    livechat_bot_agents: frozenset[str] = frozenset()
    sunshine_agent_integrations: frozenset[str] = frozenset({"zd-agentWorkspace", "zd:agentWorkspace"})
    # The account of Chatwoot conversation events that do not name one (a single-account install).
    chatwoot_default_account: str | None = None

    @classmethod
    def from_env(cls) -> AdapterConfig:
        queue_raw = os.environ.get("ADAPTER_QUEUE_MAP", "").strip()
        queue_map = {
            _name("ADAPTER_QUEUE_MAP key", k): _name("ADAPTER_QUEUE_MAP", v)
            for k, v in (_parse_json_object("ADAPTER_QUEUE_MAP", queue_raw) if queue_raw else {}).items()
        }
        tenant_raw = os.environ.get("ADAPTER_TENANT", "").strip()
        tenant, tenants = DEFAULT_TENANT, {}
        if tenant_raw.startswith("{"):
            parsed = _parse_json_object("ADAPTER_TENANT", tenant_raw)
            tenants = {_name("ADAPTER_TENANT key", k): _name("ADAPTER_TENANT", v) for k, v in parsed.items()}
            tenant = tenants.pop("*", DEFAULT_TENANT)
        elif tenant_raw:
            tenant = _name("ADAPTER_TENANT", tenant_raw)
        agent_raw = os.environ.get("ADAPTER_AGENT_QUEUES", "").strip()
        agent_queues: dict[str, tuple[str, ...]] = {}
        for key, queues in (_parse_json_object("ADAPTER_AGENT_QUEUES", agent_raw) if agent_raw else {}).items():
            if not isinstance(queues, list) or not queues:
                raise SystemExit(f"ADAPTER_AGENT_QUEUES[{key!r}] must be a non-empty list of queue names")
            agent_queues[key] = tuple(_name("ADAPTER_AGENT_QUEUES", q) for q in queues)
        capacity_raw = os.environ.get("ADAPTER_AGENT_CAPACITY", "").strip() or "5"
        try:
            capacity = int(capacity_raw)
        except ValueError:
            raise SystemExit(f"ADAPTER_AGENT_CAPACITY={capacity_raw!r} must be an integer") from None
        if not 1 <= capacity <= 1000:
            raise SystemExit("ADAPTER_AGENT_CAPACITY must be between 1 and 1000")
        integrations = os.environ.get("SUNSHINE_AGENT_INTEGRATIONS")
        default_account = os.environ.get("CHATWOOT_DEFAULT_ACCOUNT", "").strip()
        if default_account and (len(default_account) > 64 or not default_account.isprintable()):
            raise SystemExit("CHATWOOT_DEFAULT_ACCOUNT must be a Chatwoot account id (1..64 printable characters)")
        return cls(
            queue_map=queue_map,
            tenant=tenant,
            tenants=tenants,
            agent_capacity=capacity,
            agent_queues=agent_queues,
            livechat_bot_agents=_csv(os.environ.get("LIVECHAT_BOT_AGENT_IDS", "")),
            sunshine_agent_integrations=(
                _csv(integrations) if integrations is not None else cls.sunshine_agent_integrations
            ),
            chatwoot_default_account=default_account or None,
        )

    def tenant_for(self, platform: str, account: str) -> str:
        return self.tenants.get(f"{platform}:{account}") or self.tenants.get(platform) or self.tenant

    def queue_for(self, platform: str, account: str, *candidates: tuple[str, object]) -> str:
        """The queue of (kind, id) candidates when none has a name: see `resolve_queue`."""
        return self.resolve_queue(platform, account, *((kind, ident_, None) for kind, ident_ in candidates)).queue

    def resolve_queue(self, platform: str, account: str, *candidates: tuple[str, object, object]) -> QueueRef:
        """The queue of (kind, id, name) candidates, most specific first (a team before its inbox).

        ADAPTER_QUEUE_MAP first, so a configuration keeps meaning what it meant: a candidate's id
        (account-scoped key, then unscoped), then `platform:account`, then `platform`. Else the
        platform's own name of the first named candidate (`queue_id`), else `{kind}-{id}` of the
        first candidate with an id, else `default`. `source_id` is `{platform}:{account}:{kind}:{id}`
        of the candidate that decided (or of the first with an id, for the account/platform mapping
        and the fallbacks; none for a name sent without its id).
        """
        qm = self.queue_map
        named = [
            (kind, None if _no_id(ident_) else str(ident_), name) for kind, ident_, name in candidates
        ]
        usable = [(kind, ident_, name) for kind, ident_, name in named if ident_ is not None]
        first = scoped(platform, account, usable[0][0], usable[0][1]) if usable else None
        for kind, ident_, _name in usable:
            for key in (f"{platform}:{account}:{kind}:{ident_}", f"{platform}:{kind}:{ident_}"):
                if key in qm:
                    return QueueRef(qm[key], scoped(platform, account, kind, ident_))
        fallback = qm.get(f"{platform}:{account}") or qm.get(platform)
        if fallback:
            return QueueRef(fallback, first)
        for kind, maybe_id, name in named:  # a name counts even where the platform gave no id with it
            queue = queue_id(name)
            if queue:
                return QueueRef(queue, scoped(platform, account, kind, maybe_id) if maybe_id is not None else None)
        if usable:
            return QueueRef(queue_id(f"{usable[0][0]}-{usable[0][1]}") or DEFAULT_QUEUE, first)
        return QueueRef(DEFAULT_QUEUE, None)

    def queues_of_agent(
        self, platform: str, account: str, agent: str, scoped_agent: str, seen: Iterable[str] = ()
    ) -> list[str]:
        """Queues an agent serves: ADAPTER_AGENT_QUEUES, else every queue mapped for the platform,
        else the queues the account's deliveries have named so far (`seen`), else `default`."""
        for key in (scoped_agent, f"{platform}:{agent}", f"{platform}:{account}", platform):
            if key in self.agent_queues:
                return list(self.agent_queues[key])
        mapped = sorted({q for k, q in self.queue_map.items() if k == platform or k.startswith(platform + ":")})
        return mapped or sorted(set(seen)) or [DEFAULT_QUEUE]


@dataclass(frozen=True)
class Context:
    """Everything an adapter may read besides the payload (it reads no clock and no environment)."""

    received_ms: int  # when this delivery (or the first identical one, for retries) arrived
    config: AdapterConfig = field(default_factory=AdapterConfig)
    account: str | None = None  # `?account=` of the webhook URL, for payloads that do not name it
    recall: Recall = field(default_factory=Recall)  # read only: the webhook layer records `Mapped.learned`


# --- reading payloads -------------------------------------------------------------------------


def obj(value: object) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (optional parts of a payload)."""
    return value if isinstance(value, dict) else {}


def ident(value: object, what: str) -> str:
    """A platform id (string or integer) as text; AdapterError if it is missing or unusable."""
    if isinstance(value, bool) or value is None:
        raise AdapterError(f"{what} is missing")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if not isinstance(value, str):
        raise AdapterError(f"{what} must be a string or integer id, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_PLATFORM_ID_LEN:
        raise AdapterError(f"{what} must be 1..{MAX_PLATFORM_ID_LEN} characters, got {len(value)}")
    if not value.isprintable():
        raise AdapterError(f"{what} contains control or invisible formatting characters")
    return value


def opt_ident(value: object, what: str) -> str | None:
    return None if value is None or value == "" else ident(value, what)


def scoped(platform: str, *parts: str) -> str:
    """`platform:part:part…`, or `platform:~<hash>` when that would exceed the contract's limit."""
    joined = ":".join((platform, *parts))
    if len(joined) <= MAX_ID_LEN:
        return joined
    return f"{platform}:~{hashlib.sha256(joined.encode()).hexdigest()[:40]}"


def canonical_hash(value: object, n: int = 24) -> str:
    """A hash of a JSON value that ignores key order and formatting (a retry hashes the same)."""
    try:
        raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not reachable for decoded JSON; keep the adapter total anyway
        raw = repr(value).encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:n]


def text_len(value: object) -> int | None:
    """`chars` of a message: the length of its text, never the text itself."""
    return min(len(value), 1_000_000) if isinstance(value, str) else None


def clean_name(value: object, *, limit: int = MAX_NAME_LEN) -> str | None:
    """A short label from the platform (channel, reason) if it is printable text, else None."""
    if not isinstance(value, str) or not value.isprintable():
        return None
    value = value.strip()[:limit]
    return value or None


_SPACE_UTC = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(?:UTC|GMT|Z|z)$")


def to_ms(value: object, what: str) -> int:
    """A platform timestamp as epoch ms: ISO 8601 / RFC 3339 (naive = UTC, `… UTC` too), or Unix
    seconds (int or float; values above 1e11 are taken as milliseconds). AdapterError otherwise."""
    if isinstance(value, bool):
        raise AdapterError(f"{what} is not a timestamp")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise AdapterError(f"{what} is not a timestamp")
        ms = round(value * 1000) if abs(value) < 1e11 else round(value)
    elif isinstance(value, str):
        text = value.strip()
        m = _SPACE_UTC.match(text)
        if m:
            text = f"{m.group(1)}T{m.group(2)}+00:00"
        frac = re.search(r"\.(\d{7,})", text)
        if frac:  # Python parses at most microseconds
            text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
        if len(text) > 40:
            raise AdapterError(f"{what} is not a timestamp")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise AdapterError(f"{what} {value[:40]!r} is not an ISO 8601 timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            ms = round(parsed.timestamp() * 1000)
        except (OverflowError, ValueError):
            raise AdapterError(f"{what} is out of range") from None
    else:
        raise AdapterError(f"{what} is not a timestamp")
    if not MIN_EPOCH_MS <= ms <= MAX_EPOCH_MS:
        raise AdapterError(f"{what} is out of range (before 2001 or after 2286)")
    return ms


def ts_or(value: object, what: str, fallback: int) -> int:
    """`to_ms(value)`, or `fallback` when the platform left it out (None, 0, "")."""
    if value is None or value == 0 or value == "":
        return fallback
    return to_ms(value, what)


@dataclass(frozen=True)
class Base:
    """The fields every event of one delivery shares."""

    tenant: str
    shop_id: str
    platform: str

    def event(self, etype: str, event_id: str, ts_ms: int, **fields: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event_id": event_id,
            "type": etype,
            "ts": ts_ms,
            "tenant": self.tenant,
            "shop_id": self.shop_id,
            "platform": self.platform,
        }
        out.update({k: v for k, v in fields.items() if v is not None})
        return out


def known_name(name: object, known: Iterable[str]) -> str:
    """A bounded metric label: the event name if the adapter knows it, else `other`."""
    return name if isinstance(name, str) and name in frozenset(known) else "other"


# --- dispatching a delivery -------------------------------------------------------------------

H = TypeVar("H")


def delivery_object(payload: object, platform: str) -> dict[str, Any]:
    """The decoded delivery if it is a JSON object; AdapterError naming the platform otherwise."""
    if not isinstance(payload, dict):
        raise AdapterError(f"a {platform} delivery is a JSON object, got {type(payload).__name__}")
    return payload


def dispatch(
    message: Mapping[str, Any], field: str, handlers: Mapping[str, H], out: Mapped, *, known: Iterable[str],
    unnamed: str,
) -> tuple[str, H] | None:
    """The name in `message[field]` and its handler from `handlers`. None when no handler maps that
    name: it is recorded in `out.ignored` (as `other` unless it is in `known`). AdapterError(unnamed)
    when the field holds no string."""
    name = message.get(field)
    if not isinstance(name, str):
        raise AdapterError(unnamed)
    handler = handlers.get(name)
    if handler is None:
        out.ignored.append(known_name(name, known))
        return None
    return name, handler
