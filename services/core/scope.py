"""Where a figure belongs: the scope vocabulary, in one place (issue 14).

- `ALL` ("*") in a part of a key means all of them: a roll-up.
- `Scope(tenant, shop_id, platform, queue)`: where facts come from, one shop's queue (stage 1's partials
  and everything keyed by them). It never holds `ALL`.
- `ViewKey` `(queue, tenant, shop_id, platform)`: the key of a published view and the scope of an alert;
  any part but the queue may be `ALL`. Queue first: views partition and sort by queue (`wire.view_key`).
- An agent's own figures live under the pseudo-queue `@agent:<id>` (`agent_scope`): they flow through
  the same buckets, partials and merge as a queue's, and never mix with a real queue.
"""

from __future__ import annotations

from typing import Final, NamedTuple

ALL: Final = "*"
AGENT_PREFIX: Final = "@agent:"

ViewKey = tuple[str, str, str, str]  # (queue, tenant, shop_id, platform); ALL = all


class Scope(NamedTuple):
    tenant: str
    shop_id: str
    platform: str
    queue: str


def agent_scope(agent_id: str) -> str:
    return AGENT_PREFIX + agent_id


def is_agent_scope(queue: str) -> bool:
    return queue.startswith(AGENT_PREFIX)
