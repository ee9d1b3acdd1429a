"""Component `database`: watches the pool with a periodic `SELECT 1` for /healthz."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from bridge.component import Health
from bridge.db.errors import DB_ERRORS
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class DatabaseHealth:
    name = "database"

    def __init__(
        self, pool: asyncpg.Pool[Any], *, interval_s: float = 5.0, timeout_s: float = 2.0
    ) -> None:
        self._pool = pool
        self._interval = interval_s
        self._timeout = timeout_s
        self._up = False
        self._error = ""
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        """One probe; records and returns whether the database answered in time."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._pool.fetchval("SELECT 1")
        except DB_ERRORS as exc:
            if self._up or not self._error:
                log.warning("database: not answering: %s", exc)
            self._up, self._error = False, type(exc).__name__
        else:
            if not self._up and self._error:
                log.info("database: answering again")
            self._up, self._error = True, ""
        return self._up

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._watch(), name="database-health")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def health(self) -> Health:
        detail = {"error": self._error} if self._error else {}
        return Health("up" if self._up else "down", required=True, detail=detail)
