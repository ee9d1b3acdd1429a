"""What the bridge needs of a CRM: look a caller up, receive finished call records, and
learn of customer merges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from bridge.component import Health
from bridge.models import Customer

if TYPE_CHECKING:
    from bridge.crm.merge import MergeRecord

__all__ = ["CrmConnector"]


class CrmConnector(Protocol):
    """A CRM the bridge talks to. Also a `CustomerDirectory` (it has `lookup`), so the route
    service applies its time budget to it like to the built-in store.

    `post_record` receives the CONTRACT call-record JSON (plus `degraded`, `inferred`); it
    must be idempotent on `record["call_id"]` (delivery is at-least-once). Errors raised:
    `CrmUnavailable` (unreachable, retry later), `CrmTimeout`, `DeliveryError` (refused).

    `merged` is told of each customer merge (`crm-bridge customers merge`), oldest first, by
    `bridge.crm.merge_notice.MergeNotifier`; returning means the CRM has it (or has nothing
    to do with it), raising the same errors means "retry later". Idempotent on `record.id`.
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> Health: ...

    async def lookup(self, e164: str) -> Customer | None: ...

    async def post_record(self, record: Mapping[str, Any]) -> None: ...

    async def merged(self, record: MergeRecord) -> None: ...
