"""Platform webhook adapters: each maps one delivery onto the chat event contract (EVENTS.md).

`ADAPTERS[platform](payload, ctx)` is a pure function; see common.py for the shared types and
README.md for what each platform maps and drops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from . import chatwoot, livechat, sunshine
from .common import AdapterConfig, AdapterError, Context, Mapped

Adapter = Callable[[object, Context], Mapped]

ADAPTERS: Final[dict[str, Adapter]] = {
    "chatwoot": chatwoot.adapt,
    "livechat": livechat.adapt,
    "sunshine": sunshine.adapt,
}

__all__ = ["ADAPTERS", "Adapter", "AdapterConfig", "AdapterError", "Context", "Mapped"]
