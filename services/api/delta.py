"""The stream's compact delta format (`GET /v1/stream?delta=1`): what changed since the last frame.

A wallboard re-receiving every view every tick costs ~3 KB per queue per frame, though most of a view
stands still between ticks (often only `as_of` and the windows' `span_s` move). After the first full
`views` frame, a delta stream sends `event: delta` frames holding, per changed view, a patch:

- an object patch lists only the keys whose values changed, recursively for objects;
- any other value (a number, a string, a list, null) replaces the old one whole.

A view whose keys changed (one appeared or went) is sent whole under `replace`; a view that left the
selection is named under `removed`. Applying every patch in order to the first frame gives exactly the
views a full stream would show (`apply_patch`; the wallboard does the same in JavaScript).
"""

from __future__ import annotations

from typing import Any

NO_CHANGE: Any = object()


def patch(old: Any, new: Any) -> Any:
    """The patch taking `old` to `new`, `NO_CHANGE` if they are equal, or None if `new` lost a key of
    `old` at some level (the patch cannot say "delete": send the whole value)."""
    if old == new:
        return NO_CHANGE
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    if old.keys() - new.keys():
        return None
    out: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            out[key] = value
            continue
        sub = patch(old[key], value)
        if sub is None:
            return None
        if sub is not NO_CHANGE:
            out[key] = sub
    return out


def apply_patch(old: Any, change: Any) -> Any:
    """`old` with `change` applied (a new value; `old` is not modified)."""
    if not (isinstance(old, dict) and isinstance(change, dict)):
        return change
    out = dict(old)
    for key, value in change.items():
        out[key] = apply_patch(old[key], value) if key in old else value
    return out


def views_delta(sent: dict[str, Any], views: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"views": {queue: patch}, "replace": {queue: view}, "removed": [queue]}` from the views last
    sent (by queue) to these; empty parts are left out. `sent` is updated to these views."""
    patches: dict[str, Any] = {}
    replace: dict[str, Any] = {}
    now = {v["queue"]: v for v in views}
    for queue, view in now.items():
        old = sent.get(queue)
        change = NO_CHANGE if old is None else patch(old, view)
        if old is None or change is None:
            replace[queue] = view
        elif change is not NO_CHANGE:
            patches[queue] = change
    removed = sorted(sent.keys() - now.keys())
    sent.clear()
    sent.update(now)
    out: dict[str, Any] = {}
    if patches:
        out["views"] = patches
    if replace:
        out["replace"] = replace
    if removed:
        out["removed"] = removed
    return out
