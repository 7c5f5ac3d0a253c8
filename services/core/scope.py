"""Where a figure belongs: the scope vocabulary, in one place (issue 14).

- `ALL` ("*") in a part of a key means all of them: a roll-up.
- `Scope(tenant, shop_id, platform, queue)`: the one key of a figure. Where facts come from (stage 1's
  partials and everything keyed by them: one shop's queue, never `ALL`), the key of a published view and
  the scope of an alert (any part but the queue may be `ALL`). Read it by field name, never by index.
- `Scope.queue_first()` `(queue, tenant, shop_id, platform)`: the order views travel and sort in (the views
  topic's key, `wire.view_key`; views partition and sort by queue) and alert scopes are stored in.
- An agent's own figures live under the pseudo-queue `@agent:<id>` (`agent_scope`): they flow through
  the same buckets, partials and merge as a queue's, and never mix with a real queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

ALL: Final = "*"
AGENT_PREFIX: Final = "@agent:"


class Scope(NamedTuple):
    tenant: str
    shop_id: str
    platform: str
    queue: str

    def queue_first(self) -> tuple[str, str, str, str]:
        """(queue, tenant, shop_id, platform): the views' wire key and sort order."""
        return self.queue, self.tenant, self.shop_id, self.platform

    @classmethod
    def from_queue_first(cls, parts: Sequence[object]) -> Scope:
        """The scope of a queue-first key as read back (`queue_first`'s inverse, each part a str)."""
        queue, tenant, shop_id, platform = parts
        return cls(tenant=str(tenant), shop_id=str(shop_id), platform=str(platform), queue=str(queue))


def queue_total(queue: str) -> Scope:
    """The view of a whole queue: every tenant, shop and platform."""
    return Scope(tenant=ALL, shop_id=ALL, platform=ALL, queue=queue)


def agent_scope(agent_id: str) -> str:
    return AGENT_PREFIX + agent_id


def is_agent_scope(queue: str) -> bool:
    return queue.startswith(AGENT_PREFIX)
