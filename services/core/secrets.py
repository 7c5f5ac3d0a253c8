"""Secrets read from the environment: known placeholder values are refused at start.

A manifest or an `.env` copied with `replace-me` left in would otherwise run with a token anyone
can guess. An empty value is refused only with `FLOORWATCH_REQUIRE_SECRETS=true` (set by the
Kubernetes base, where a missing secret is a deployment mistake); locally each service treats an
empty secret as "not configured" and refuses that traffic (503), which is the safe reading.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

PLACEHOLDERS: Final = frozenset({
    "replace-me", "replaceme", "replace_me", "changeme", "change-me", "change_me", "secret", "password",
    "token", "xxx", "todo", "placeholder", "example",
})


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS or (value != "" and value.strip() == "")


def refuse_placeholders(values: Mapping[str, str]) -> None:
    """SystemExit naming every setting that holds a known placeholder (never the value itself)."""
    bad = sorted(name for name, value in values.items() if is_placeholder(value))
    if bad:
        raise SystemExit(
            f"{', '.join(bad)}: a placeholder value, not a secret; set a random one (make k8s-secrets or .env)"
        )


def require_secrets(values: Mapping[str, str]) -> None:
    """With FLOORWATCH_REQUIRE_SECRETS=true, SystemExit naming each of `values` that is empty. A key may
    name alternatives (`"INGEST_TOKEN or INGEST_TOKENS"`): the value given for it is their join."""
    if os.environ.get("FLOORWATCH_REQUIRE_SECRETS", "").strip().lower() not in {"1", "true", "yes", "on"}:
        return
    missing = sorted(name for name, value in values.items() if not value.strip())
    if missing:
        raise SystemExit(f"FLOORWATCH_REQUIRE_SECRETS is set and {', '.join(missing)} is empty: set a random value")
