"""What the bridge needs of a CRM: look a caller up, receive finished call records, learn
of customer merges, and take the customers the desk creates or corrects."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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

    `create_customer` (the desk's "create customer" for an unknown caller) writes to the CRM
    so the next lookup of `e164` finds it; name and tags arrive validated. `DuplicatePhone`:
    the number is already known; `CrmRefused(kind="unsupported")`: this CRM cannot.
    `update_customer` corrects a customer's name and/or tags (None: unchanged) when
    `allowed(owner)` says the actor may: `NotFound`, `bridge.crm.customer_edits.EditRefused`,
    `CrmRefused(kind="unsupported")`. Both are audited with `actor` where the bridge keeps
    the data.
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> Health: ...

    async def lookup(self, e164: str) -> Customer | None: ...

    async def post_record(self, record: Mapping[str, Any]) -> None: ...

    async def merged(self, record: MergeRecord) -> None: ...

    async def create_customer(
        self, name: str, e164: str, tags: Sequence[str] = (), *, actor: str = ""
    ) -> Customer: ...

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None,
        tags: Sequence[str] | None,
        actor: str,
        allowed: Callable[[str | None], bool],
    ) -> Customer: ...
