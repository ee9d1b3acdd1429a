"""What the five prebuilt connectors share: the `CrmConnector` interface around a vendor API.

A vendor module says how to authenticate and how its API finds a caller, reads the card,
writes a call, creates a customer and lists what changed; this class does the rest once:
one HTTP adapter (`VendorHttp`: bounded, rate-limit aware), one retry after a refused
token (refresh, then give up), health without secrets, and the idempotent write-back
(find the vendor record that carries the call's marker, update it, else create it).

Customer merges (`merged`): a vendor with a documented merge API overrides `_merge`; the
others acknowledge the merge without sending anything, and say so once
in the log: a retry could never succeed, and the merge stays recorded in the bridge.

Webhooks: a vendor whose CRM posts its changes overrides `webhook_changes`, a pure verifier
and parser (method, URL, headers, body -> the changed customer ids, or `WebhookRefused` with
the HTTP status); `webhook.py` serves it. The others say why they are polled instead.

The route service bounds `lookup` by `[agi] budget_ms`; nothing here waits longer than
`[crm] timeout_ms` per request, and a rate-limited CRM fails a lookup at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import quote

import phonenumbers

from bridge.component import Health
from bridge.config import CrmConfig
from bridge.connectors.prebuilt.calls import CallSummary
from bridge.connectors.prebuilt.credentials import Credentials
from bridge.connectors.prebuilt.http import Answer, VendorHttp
from bridge.connectors.prebuilt.oauth import TokenCache
from bridge.errors import BridgeError, CrmError, CrmRefused, DeliveryError
from bridge.models import Customer, CustomerCard

if TYPE_CHECKING:
    from bridge.crm.merge import MergeRecord

__all__ = [
    "MAX_ROWS",
    "PrebuiltConnector",
    "WebhookRefused",
    "national_digits",
    "tag_names",
    "webhook_json",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ROWS = 5  # deals/orders and open cases on a card, as the built-in card shows


def national_digits(e164: str) -> str:
    """`+15551230001` -> `5551230001`: how many CRMs index a phone typed without a prefix."""
    try:
        return str(phonenumbers.parse(e164, None).national_number)
    except phonenumbers.NumberParseException:
        return "".join(c for c in e164 if c.isdigit())


class WebhookRefused(Exception):
    """A webhook request not taken: `status` is the HTTP answer, `reason` says why (no secret)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


MAX_TAGS = 20


def tag_names(tags: Sequence[str]) -> list[str]:
    """The desk's tags as every CRM takes them: one line each, no `;` or `,` (the vendors'
    list separators), at most 64 characters, no duplicates, at most 20."""
    out: list[str] = []
    for tag in tags:
        clean = " ".join(str(tag).replace(";", " ").replace(",", " ").split())[:64]
        if clean and clean.isprintable() and clean not in out:
            out.append(clean)
    return out[:MAX_TAGS]


def webhook_json(body: bytes) -> Any:
    """A webhook body as JSON, or 400 (invalid UTF-8, NUL, malformed, too deep)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WebhookRefused(400, "the body is not JSON") from exc


class PrebuiltConnector(ABC):
    name = "crm"
    vendor: ClassVar[str]
    label: ClassVar[str]
    default_base_url: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()  # credential names
    preset: ClassVar[dict[str, str]] = {}  # our card field -> theirs, shown by `crm setup`
    no_merge_api: ClassVar[str] = "offers no documented API to merge records"
    # How the CRM pushes its changes to POST /webhooks/crm/{vendor}; "" = it does not (or
    # not usably), `polling_only` says why, and the change feed polls.
    webhook: ClassVar[str] = ""
    polling_only: ClassVar[str] = "has no built-in outbound webhook"

    def __init__(self, config: CrmConfig, credentials: Credentials) -> None:
        for secret in self.needs:
            credentials.require(secret, self.vendor)
        base = (config.base_url or self.default_base_url).rstrip("/")
        if not base:
            raise CrmRefused("request", f"[crm] base_url is required for {self.vendor}")
        self.base_url = base
        self.config = config
        self.credentials = credentials
        self.http = VendorHttp(self.label, config.timeout_ms / 1000)
        self.tokens: TokenCache | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._said_no_merge_api = False
        self._said_no_tags_field = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.http.start()
        if self.tokens is not None and self._refresher is None:
            self._refresher = asyncio.create_task(self.tokens.refresh_loop())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await self.http.stop()

    def health(self) -> Health:
        detail: dict[str, Any] = {"connector": self.vendor}
        limited = self.http.rate_limited_for()
        if limited > 0:
            detail["rate_limited_s"] = round(limited)
        if self._last_error:
            return Health("degraded", required=False, detail={**detail, "error": self._last_error})
        return Health("up", required=False, detail=detail)

    def customer_link(self, customer_id: str) -> str:
        template = self.config.customer_url
        return template.replace("{id}", quote(customer_id, safe="")) if template else ""

    # --- the connector interface ---------------------------------------------------------------

    async def lookup(self, e164: str) -> Customer | None:
        return await self._guarded(lambda: self._lookup(e164))

    async def card(self, customer_id: str) -> CustomerCard | None:
        """The pop's card: tags, owner, recent deals or orders, open cases."""
        return await self._guarded(lambda: self._card(customer_id))

    async def post_record(self, record: Mapping[str, Any]) -> None:
        call = CallSummary.of(record)
        if not call.call_id:
            raise DeliveryError("record without call_id")
        try:
            contact = call.customer_id
            if not contact and call.caller.startswith("+"):
                found = await self.lookup(call.caller)
                contact = found.id if found else ""
            await self._guarded(lambda: self._write_call(call, contact))
        except CrmError as exc:
            raise DeliveryError(f"{self.label} did not take call {call.call_id!r}: {exc}") from exc

    async def merged(self, record: MergeRecord) -> None:
        """Tell the CRM that `record.merged_ids` were merged into `record.survivor_id`."""
        try:
            await self._guarded(lambda: self._merge(record.survivor_id, list(record.merged_ids)))
        except CrmError as exc:
            raise DeliveryError(f"{self.label} did not take merge {record.id}: {exc}") from exc

    async def create_customer(
        self, name: str, e164: str, tags: Sequence[str] = (), *, actor: str = ""
    ) -> Customer:
        """ "Create customer" from the desk: a contact with this name, phone and tags. Tags
        go where the preset maps them: Zoho's Tag API, Odoo's `category_id`, and for HubSpot,
        Salesforce and SuiteCRM the contact field `[crm] tags_field` names (none: the tags
        stay in the bridge's audit only, said once in the log)."""
        name = " ".join(name.split())[:200]
        if not name:
            raise CrmRefused("request", "a customer needs a name")
        clean = tag_names(tags)
        return await self._guarded(lambda: self._create(name, e164, clean))

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None,
        tags: Sequence[str] | None,
        actor: str,
        allowed: Callable[[str | None], bool],
    ) -> Customer:
        """Corrections are made in the CRM itself (its own permissions apply there)."""
        raise CrmRefused("unsupported", f"correct this customer in {self.label} itself")

    async def changes_since(self, since: datetime) -> tuple[list[Customer], datetime]:
        """Customers changed after `since` and the cursor for the next poll."""
        return await self._guarded(lambda: self._changes(since))

    def webhook_changes(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: float
    ) -> list[str]:
        """The customer ids a verified webhook request says changed, or `WebhookRefused`.
        Pure: no I/O; `url` is the URL the CRM posted to, `now` the wall clock in seconds."""
        raise WebhookRefused(404, f"{self.label} {self.polling_only}: its changes are polled")

    def _webhook_secret(self) -> str:
        secret = self.credentials.get("webhook_secret")
        if not secret:
            raise WebhookRefused(
                404, f"{self.label} webhooks are off: no webhook_secret is configured"
            )
        return secret

    # --- shared machinery ----------------------------------------------------------------------

    async def _guarded(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run `op`; a refused token is dropped and `op` retried once with a fresh one."""
        try:
            try:
                result = await op()
            except CrmRefused as exc:
                if exc.kind != "credentials" or self.tokens is None:
                    raise
                self.tokens.invalidate()
                result = await op()
        except BridgeError as exc:
            self._last_error = str(exc)[:300]
            raise
        self._last_error = None
        return result

    async def _auth_headers(self) -> dict[str, str]:
        if self.tokens is None:
            return {}
        return {"Authorization": f"Bearer {await self.tokens.get()}"}

    async def _api(self, method: str, path: str, **kwargs: Any) -> Answer:
        headers = {**await self._auth_headers(), **kwargs.pop("headers", {})}
        return await self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    def _unexpected(self, what: str, answer: Answer) -> CrmError:
        return CrmError(f"{self.label} {what}: unexpected HTTP {answer.status}")

    # --- what a vendor module provides --------------------------------------------------------

    async def _merge(self, survivor_id: str, merged_ids: list[str]) -> None:
        """No documented merge API: acknowledged, logged once per connector."""
        if not self._said_no_merge_api:
            self._said_no_merge_api = True
            log.warning(
                "%s %s: customer merges are kept in the bridge only (merge the records in"
                " %s by hand if needed)",
                self.label,
                self.no_merge_api,
                self.label,
            )

    @abstractmethod
    async def _lookup(self, e164: str) -> Customer | None: ...

    @abstractmethod
    async def _card(self, customer_id: str) -> CustomerCard | None: ...

    @abstractmethod
    async def _write_call(self, call: CallSummary, contact_id: str) -> None: ...

    @abstractmethod
    async def _create(self, name: str, e164: str, tags: Sequence[str]) -> Customer: ...

    def _tags_value(self, tags: Sequence[str]) -> dict[str, str]:
        """`{tags_field: "a;b"}` for the vendors that keep tags in one contact field."""
        field = self.config.tags_field
        if tags and not field and not self._said_no_tags_field:
            self._said_no_tags_field = True
            log.warning(
                "%s: tags from the desk stay in the bridge: set [crm] tags_field to send them",
                self.label,
            )
        return {field: ";".join(tags)} if tags and field else {}

    @abstractmethod
    async def _changes(self, since: datetime) -> tuple[list[Customer], datetime]: ...

    @abstractmethod
    def preview(self, record: Mapping[str, Any], contact_id: str) -> Any:
        """What a call record would send (for `crm-bridge crm check`), as plain data."""
