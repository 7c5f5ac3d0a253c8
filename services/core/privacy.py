"""How agent ids are shown outside the pipeline: an id that looks like an e-mail address (LiveChat's agent
ids are the agents' login addresses) is shown as `agent-<12 hex>`, a keyed hash with `AGENT_ID_SALT`.

The same id and salt always give the same name, so the API's replicas, the SSE stream and the scorer's
/metrics agree and a dashboard's series stay continuous; without the salt the name cannot be turned back
into the address by hashing a list of likely addresses. Ids that are not addresses (`a-12`) are shown
as they are. 12 hex digits (48 bits): no two agents of a large floor share a name (an 8-digit name
would collide about once in a hundred floors of 10,000 agents, merging their series).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from functools import lru_cache
from typing import Final

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PSEUDONYM_PREFIX: Final = "agent-"


def looks_like_email(agent_id: str) -> bool:
    return _EMAIL.match(agent_id) is not None


@lru_cache(maxsize=65_536)
def _shown(agent_id: str, salt: str) -> str:
    if not looks_like_email(agent_id):
        return agent_id
    digest = hmac.new(salt.encode(), agent_id.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:12]


def shown_agent_id(agent_id: str, salt: str | None = None) -> str:
    """The agent id as the API, the stream and /metrics show it (salt: AGENT_ID_SALT unless given)."""
    return _shown(agent_id, os.environ.get("AGENT_ID_SALT", "") if salt is None else salt)
