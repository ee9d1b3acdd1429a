"""The change feed: CRM edits reach the bridge's cache without waiting for a call.

Every `[crm] poll_s` seconds the component asks the CRM for customers changed since the last
cursor (`changes_since`) and hands them to `sink` (`PrebuiltDirectory.refresh`, see
`wiring.py`). This works for every prebuilt connector and needs no public endpoint; where a
CRM offers webhooks they only make it sooner (`webhook.py`). The cursor starts at start-up,
so a restart re-reads nothing older; a failed poll keeps the cursor and tries again next
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from bridge.component import Health
from bridge.connectors.prebuilt.base import PrebuiltConnector
from bridge.errors import BridgeError
from bridge.models import Customer

__all__ = ["ChangeFeed"]

log = logging.getLogger(__name__)
Sink = Callable[[Sequence[Customer]], Awaitable[None]]


class ChangeFeed:
    name = "crm_feed"

    def __init__(
        self,
        connector: PrebuiltConnector,
        sink: Sink,
        *,
        poll_s: float,
        since: datetime | None = None,
    ) -> None:
        self.connector = connector
        self.sink = sink
        self.poll_s = poll_s
        self.cursor = since or datetime.now(UTC)
        self.seen = 0
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None

    async def poll_once(self) -> int:
        try:
            changed, cursor = await self.connector.changes_since(self.cursor)
        except BridgeError as exc:
            self._error = str(exc)[:300]
            log.warning("CRM change feed: %s", exc)
            return 0
        self._error = None
        if changed:
            await self.sink(changed)
        self.cursor = max(self.cursor, cursor)
        self.seen += len(changed)
        return len(changed)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.poll_once()

    async def start(self) -> None:
        if self.poll_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def health(self) -> Health:
        detail = {"cursor": self.cursor.isoformat(), "changes": self.seen}
        if self._error:
            return Health("degraded", required=False, detail={**detail, "error": self._error})
        return Health("up", required=False, detail=detail)
