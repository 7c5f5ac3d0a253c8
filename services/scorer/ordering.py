"""A stage's records go out in the order of the state they were built from.

`send` awaits per record (a full batch waits for Kafka), so two tasks sending one stage's records interleave them.
The tick rebuilds the partitions no event came for, and a rebuild re-asserts the chat slot of every conversation it
holds: had the events' stream scored on while the tick was still sending that, a chat an event closed meanwhile
was re-asserted open after its close (the rebuild read it open), and its agent held it for good (CI's
`test_sigkill_mid_run_on_rocksdb_equals_reference`, 2026-12-05: 29 chats held by conversations that had closed).
A re-send's end marker must likewise follow its begin marker, which a batch's own rebuild may be sending.

So a stage's batches run holding its `StageOrder.lock`, and the tick takes it only while a rebuild or a re-send's
end is due (after an assignment); otherwise it does not wait for batches.

A rebuild runs in turns (`in_turns`): the loop serves the rest of the worker between them, the lock still held.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from .stages import Out, Rebuilding, turn


class Rebuildable(Protocol):
    """A stage that rebuilds the partitions it newly owns (`ConversationStage`, `AgentStage`)."""

    resending: set[int]  # rebuilt partitions whose re-send ends on the next full tick

    @property
    def parts(self) -> Mapping[int, Any]: ...  # the partitions built (read only here)

    def rebuilding(self, partitions: set[int]) -> Rebuilding: ...


async def in_turns(steps: Rebuilding) -> list[Out]:
    """A stage's rebuild run to its end, a turn of the loop between its steps (its value: the records to send).
    Taking over a large floor's partitions is seconds of decoding; meanwhile stage 2 builds views and the worker
    answers /metrics and /healthz (before 2026-12-06 a takeover of 50,000 conversations held the loop 2.6 s)."""
    while (records := turn(steps)) is None:
        await asyncio.sleep(0)
    return records


class StageOrder:
    """One stage's order: the lock its batches hold, and the tick's way in (`tick`)."""

    def __init__(self, stage: Rebuildable) -> None:
        self.stage = stage
        self.lock = asyncio.Lock()  # held by each of the stage's batches

    def settling(self, owned: set[int]) -> bool:
        """Whether the stage has owned partitions to rebuild, or a re-send whose end marker is still to go."""
        return bool(self.stage.resending) or not owned <= self.stage.parts.keys()

    @contextlib.asynccontextmanager
    async def tick(self, owned: set[int], send: Callable[[list[Out]], Awaitable[None]]) -> AsyncIterator[None]:
        """For the tick: rebuild the owned partitions not built yet and send what that gives, then run the body (where
        the tick builds its records, a re-send's end marker among them), with the stage's batches held back if a
        rebuild or a re-send's end is due."""
        if not self.settling(owned):
            yield
            return
        async with self.lock:
            await send(await in_turns(self.stage.rebuilding(owned)))
            yield
