"""Secrets read from the environment: known placeholder values are refused at start.

A manifest or an `.env` copied with `replace-me` left in would otherwise run with a token anyone
can guess. An empty value is not refused here: each service already treats an empty secret as
"not configured" and refuses that traffic (503), which is the safe reading.
"""

from __future__ import annotations

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
