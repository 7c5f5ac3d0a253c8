"""Reading and splitting a POST /v1/events body: one JSON object, a JSON array, or NDJSON.

Errors that concern the whole body raise `BodyError` (with an HTTP status and a stable reason
code); a line of NDJSON that is not JSON becomes a per-event `RawItem` error instead, so the
other lines of the batch still count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})


class BodyError(Exception):
    """The body as a whole is refused: `status` for the answer, `code` for the metric."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RawItem:
    """One element of the batch: a decoded JSON value, or why its NDJSON line did not decode."""

    index: int
    value: Any = None
    line: int | None = None  # 1-based line number, NDJSON only
    error: str | None = None  # reason a person can act on (then `value` is None)
    code: str = "invalid_json"  # metric label of `error`: invalid_json or too_deep


def is_ndjson(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in NDJSON_TYPES


def too_large(limit: int) -> BodyError:
    return BodyError(413, "body_too_large", f"body is larger than {limit} bytes; send smaller batches")


def check_content_length(header: str | None, limit: int) -> None:
    if header is None:
        return
    try:
        length = int(header)
    except ValueError:
        raise BodyError(400, "bad_request", "Content-Length is not a number") from None
    if length > limit:
        raise too_large(limit)


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Collect the body, refusing it as soon as it grows past `limit` bytes."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise too_large(limit)
    return bytes(buf)


def _json_error(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0][:200]


DEFAULT_MAX_DEPTH = 64


def too_deep(value: Any, limit: int, raw: bytes | None = None) -> bool:
    """Does `value` nest containers deeper than `limit` (the outermost container is depth 1)?

    Iterative, so it never recurses; when `raw` is given and holds at most `limit` brackets
    in all, the walk is skipped (it cannot nest deeper than it has brackets).
    """
    if raw is not None and raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def depth_error(limit: int) -> BodyError:
    return BodyError(422, "too_deep", f"JSON nests deeper than {limit} levels; events are flat objects")


def loads_limited(raw: bytes, max_depth: int, what: str = "body") -> Any:
    """orjson.loads with a nesting limit; raises BodyError (422 invalid_json / too_deep).

    orjson itself refuses more than 1024 levels (a JSONDecodeError, never a crash); the
    stricter `max_depth` is checked on the decoded value without recursion.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise depth_error(max_depth) from None
        raise BodyError(422, "invalid_json", f"{what} is not valid JSON: {_json_error(exc)}") from None
    if isinstance(value, (dict, list)) and too_deep(value, max_depth, raw):
        raise depth_error(max_depth)
    return value


def split_body(raw: bytes, *, ndjson: bool, max_batch: int, max_depth: int = DEFAULT_MAX_DEPTH) -> list[RawItem]:
    if ndjson:
        return _split_ndjson(raw, max_batch, max_depth)
    if not raw.strip():
        raise BodyError(422, "invalid_json", "body is empty; send a JSON object, a JSON array or NDJSON")
    try:
        value = loads_limited(raw, max_depth)
    except BodyError as err:
        if err.code == "invalid_json" and b"\n{" in raw:
            err.reason += " (for one event per line send Content-Type: application/x-ndjson)"
        raise
    if isinstance(value, dict):
        return [RawItem(0, value)]
    if isinstance(value, list):
        if len(value) > max_batch:
            raise _batch_too_large(len(value), max_batch)
        return [RawItem(i, item) for i, item in enumerate(value)]
    raise BodyError(422, "not_object", f"body must be a JSON object or an array of objects, got {type(value).__name__}")


def _batch_too_large(count: int, limit: int) -> BodyError:
    return BodyError(413, "batch_too_large", f"batch has {count} events; at most {limit} per request")


def _split_ndjson(raw: bytes, max_batch: int, max_depth: int) -> list[RawItem]:
    numbered = [(n, line) for n, line in enumerate(raw.split(b"\n"), start=1) if line.strip()]
    if len(numbered) > max_batch:
        raise _batch_too_large(len(numbered), max_batch)
    items: list[RawItem] = []
    for index, (lineno, line) in enumerate(numbered):
        try:
            items.append(RawItem(index, loads_limited(line, max_depth, f"line {lineno}"), line=lineno))
        except BodyError as err:
            reason = err.reason if err.code == "invalid_json" else f"line {lineno}: {err.reason}"
            items.append(RawItem(index, line=lineno, error=reason, code=err.code))
    return items
