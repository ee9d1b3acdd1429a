"""The built-in connector: the bridge's own PostgreSQL store *is* the CRM.

Lookups go to the given directory (normally `bridge.crm.directory.PostgresDirectory`);
a call record is already in `call_records` when the outbox hands it over, so delivery is a
no-op and the outbox simply marks it delivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from bridge.component import Health
from bridge.models import Customer

if TYPE_CHECKING:
    from bridge.crm.merge import MergeRecord

__all__ = ["BuiltinConnector"]


class _Directory(Protocol):
    async def lookup(self, e164: str) -> Customer | None: ...


class BuiltinConnector:
    name = "crm"

    def __init__(self, directory: _Directory | None = None) -> None:
        self._directory = directory
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
