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


def split_body(raw: bytes, *, ndjson: bool, max_batch: int) -> list[RawItem]:
    if ndjson:
        return _split_ndjson(raw, max_batch)
    if not raw.strip():
        raise BodyError(422, "invalid_json", "body is empty; send a JSON object, a JSON array or NDJSON")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        hint = " (for one event per line send Content-Type: application/x-ndjson)" if b"\n{" in raw else ""
        raise BodyError(422, "invalid_json", f"body is not valid JSON{hint}: {_json_error(exc)}") from None
    if isinstance(value, dict):
        return [RawItem(0, value)]
    if isinstance(value, list):
        if len(value) > max_batch:
            raise _batch_too_large(len(value), max_batch)
        return [RawItem(i, item) for i, item in enumerate(value)]
    raise BodyError(422, "not_object", f"body must be a JSON object or an array of objects, got {type(value).__name__}")


def _batch_too_large(count: int, limit: int) -> BodyError:
    return BodyError(413, "batch_too_large", f"batch has {count} events; at most {limit} per request")


def _split_ndjson(raw: bytes, max_batch: int) -> list[RawItem]:
    numbered = [(n, line) for n, line in enumerate(raw.split(b"\n"), start=1) if line.strip()]
    if len(numbered) > max_batch:
        raise _batch_too_large(len(numbered), max_batch)
    items: list[RawItem] = []
    for index, (lineno, line) in enumerate(numbered):
        try:
            items.append(RawItem(index, orjson.loads(line), line=lineno))
        except orjson.JSONDecodeError as exc:
            items.append(RawItem(index, line=lineno, error=f"line {lineno} is not valid JSON: {_json_error(exc)}"))
    return items
