"""Who took part in a call, as it happens: rung, answered, transferred to (`call_participants`).

Filing a disposition checks it while the call is still live (no record yet). It subscribes
to the tracker's call events like the record writer, maps each device to its agent through
the roster, and writes in batches off the live path (`bridge.batching`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from bridge.batching import BatchWriter
from bridge.component import Health
from bridge.db.errors import map_db_errors
from bridge.models import CallAnswered, CallDialing, CallEvent, CallRinging, CallTransferred

log = logging.getLogger(__name__)

__all__ = ["ParticipantRecorder", "record_participant", "write_participants"]


Participant = tuple[str, str, str]  # call id, agent id, how (rung | answered | transferred)


async def write_participants(pool: asyncpg.Pool[Any], rows: Sequence[Participant]) -> None:
    """Insert (call_id, agent_id, how) rows in one statement; duplicates are ignored."""
    rows = [(c[:150], a, h) for c, a, h in rows if c]
    if not rows:
        return
    with map_db_errors("cannot record call participants"):
        await pool.execute(
            "INSERT INTO call_participants (call_id, agent_id, how)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )


class ParticipantRecorder:
    """Component `participants`: `on_event` is an event-bus subscriber of call events."""

    name = "participants"

    def __init__(self, pool: asyncpg.Pool[Any], agent_id_of: Callable[[str], str | None]) -> None:
        self._agent_id_of = agent_id_of
        self._rows: BatchWriter[Participant] = BatchWriter(
            lambda rows: write_participants(pool, rows), what="call participants"
        )

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        # who talked decides who may file a disposition: try to keep it
        await self._rows.drain(timeout_s=2.0)

    def health(self) -> Health:
        return Health("up", required=False)

    async def drain(self) -> None:
        await self._rows.drain()

    async def on_event(self, event: CallEvent) -> None:
        self.note(event)

    def note(self, event: CallEvent) -> None:
        if isinstance(event, CallRinging | CallDialing):
            # the agent who dialled out is on its call even if nobody answered it
            self._add(event.call_id, event.device, "rung")
        elif isinstance(event, CallAnswered):
            self._add(event.call_id, event.device, "answered")
        elif isinstance(event, CallTransferred):
            self._add(event.call_id, event.to_device, "transferred")

    def _add(self, call_id: str, device: str, how: str) -> None:
        agent_id = self._agent_id_of(device)
        if agent_id is not None:
            self._rows.add((call_id, agent_id, how))


async def record_participant(
    pool: asyncpg.Pool[Any], call_id: str, agent_id: str, how: str
) -> None:
    await write_participants(pool, [(call_id, agent_id, how)])
