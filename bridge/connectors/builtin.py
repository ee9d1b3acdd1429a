"""The built-in connector: the bridge's own PostgreSQL store *is* the CRM.

Lookups go to the given directory (normally `bridge.crm.directory.PostgresDirectory`);
a call record is already in `call_records` when the outbox hands it over, so delivery is a
no-op and the outbox simply marks it delivered. Customers created or corrected from the desk
go to the store (`bridge.crm.customer_edits`) on `pool`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from bridge.component import Health
from bridge.errors import CrmUnavailable
from bridge.models import Customer

if TYPE_CHECKING:
    from bridge.crm.merge import MergeRecord

__all__ = ["BuiltinConnector"]


class _Directory(Protocol):
    async def lookup(self, e164: str) -> Customer | None: ...


class BuiltinConnector:
    name = "crm"

    def __init__(
        self, directory: _Directory | None = None, *, pool: asyncpg.Pool[Any] | None = None
    ) -> None:
        self._directory = directory
        self._pool = pool
        self.posted = 0
        self.merges_acknowledged = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def health(self) -> Health:
        return Health("up", required=False, detail={"connector": "builtin"})

    async def lookup(self, e164: str) -> Customer | None:
        if self._directory is None:
            return None
        return await self._directory.lookup(e164)

    async def post_record(self, record: Mapping[str, Any]) -> None:
        self.posted += 1

    async def merged(self, record: MergeRecord) -> None:
        self.merges_acknowledged += 1

    def _store(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise CrmUnavailable("the built-in connector has no database pool")
        return self._pool

    async def create_customer(
        self, name: str, e164: str, tags: Sequence[str] = (), *, actor: str = ""
    ) -> Customer:
        from bridge.crm import customer_edits  # here: audit imports pops, which import us

        return await customer_edits.create(self._store(), name, e164, tags, actor=actor)

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None,
        tags: Sequence[str] | None,
        actor: str,
        allowed: Callable[[str | None], bool],
    ) -> Customer:
        from bridge.crm import customer_edits

        return await customer_edits.update(
            self._store(), customer_id, name=name, tags=tags, actor=actor, allowed=allowed
        )
