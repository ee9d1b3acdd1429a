"""Zoho CRM: OAuth refresh token; Contacts searched by phone; calls in the Calls module.

Follows Zoho CRM's REST API v2 reference (zoho.com/crm/developer/docs/api/v2/, read
2026-12): tokens from `POST {accounts}/oauth/v2/token` (`grant_type=refresh_token`,
`client_id`, `client_secret`, `refresh_token`) -> `{"access_token", "api_domain",
"token_type", "expires_in"}` (an unknown grant is `{"error": "invalid_code"}`, even with HTTP
200); requests carry `Authorization: Zoho-oauthtoken <token>`. `GET /crm/v2/Contacts/search
?phone=` searches every phone field; records come as `{"data": [...], "info": {"page",
"per_page", "count", "more_records"}}` and "none" is HTTP 204. Writes are `{"data": [...]}`
answered per record with `{"code": "SUCCESS" | "INVALID_DATA", "details", "status"}`.
Errors: 401 `INVALID_TOKEN`, 403 `OAUTH_SCOPE_MISMATCH`, 429 over the API credit limit.

Notifications (zoho.com/crm/developer/docs/api/v2/notifications/enable.html and
.../notifications/overview.html, read 2026-12): subscribed with `POST /crm/v2/actions/watch`
(`channel_id`, `events: ["Contacts.all"]`, `notify_url`, and a `token` of at most 50
characters), Zoho posts `{"server_time", "module", "resource_uri", "ids", "operation",
"channel_id", "token", ...}` to the notify URL. Zoho signs nothing: the token sent back in
the body is the only proof, compared here in constant time with `webhook_secret`. There is
no timestamp to check: a replayed notification can only make the bridge read a contact again.

Merges use the Merge Records API, which Zoho documents from API v6 on (zoho.com/crm/developer/
docs/api/v6/merge-records.html, read 2026-12): `POST /crm/v6/Contacts/{master}/actions/merge`
with `{"merge": [{"data": [{"id": child}, ...]}]}`, at most two children per request, answered
`{"merge": [{"code": "SUCCESS" | "SCHEDULED", "details": {"job_id"}, ...}]}` (SCHEDULED: Zoho
finishes it as a job). Only this call uses v6; the rest stays on v2. Idempotent: each child
is read first, and one Zoho no longer has (HTTP 204) was merged already.

A repeated delivery finds its call by `Subject` (the call's marker) and updates it.
The accounts server is regional: set `[crm] token_url` (e.g. accounts.zoho.eu) with
`base_url` (www.zohoapis.eu) outside the US data centre.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from bridge.config import CrmConfig
from bridge.connectors.prebuilt.base import (
    MAX_ROWS,
    PrebuiltConnector,
    WebhookRefused,
    webhook_json,
)
from bridge.connectors.prebuilt.calls import CallSummary
from bridge.connectors.prebuilt.credentials import Credentials
from bridge.connectors.prebuilt.fields import as_list, as_map, row, text
from bridge.connectors.prebuilt.http import Answer, error_code
from bridge.connectors.prebuilt.oauth import TokenCache
from bridge.errors import CrmError, CrmRefused
from bridge.models import Customer, CustomerCard

__all__ = ["ZohoConnector", "call_fields", "criteria_value", "notification_ids"]

log = logging.getLogger(__name__)
ACCOUNTS = "https://accounts.zoho.com/oauth/v2/token"
MAX_PAGES = 20


def criteria_value(value: str) -> str:
    """Zoho criteria need `(`, `)`, `,` and `\\` escaped with a backslash."""
    return "".join("\\" + c if c in "(),\\" else c for c in value if c.isprintable())


def call_fields(call: CallSummary, contact_id: str) -> dict[str, Any]:
    minutes, seconds = divmod(call.duration_s, 60)
    fields: dict[str, Any] = {
        "Subject": call.title,
        "Call_Type": "Inbound" if call.inbound else "Outbound",
        "Call_Start_Time": call.started_at.replace(microsecond=0).isoformat(),
        "Call_Duration": f"{minutes:02d}:{seconds:02d}",
        "Call_Result": (call.disposition or call.outcome)[:100],
        "Description": call.description(),
    }
    if contact_id:
        fields["Who_Id"] = {"id": contact_id}
        fields["$se_module"] = "Contacts"
    return fields


MAX_IDS = 1000
MERGE_CHILDREN = 2  # the Merge Records API: one master and up to two children per request


def _record_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 40


def notification_ids(payload: Any, token: str) -> list[str]:
    """The Contacts ids of a Zoho notification carrying `token`, or `WebhookRefused`."""
    if not isinstance(payload, dict):
        raise WebhookRefused(400, "a Zoho notification is a JSON object")
    given = payload.get("token")
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode("utf-8", "replace"), token.encode()
    ):
        raise WebhookRefused(401, "bad or missing notification token")
    ids = payload.get("ids")
    if not isinstance(ids, list) or len(ids) > MAX_IDS:
        raise WebhookRefused(400, "a Zoho notification carries a list of ids")
    if payload.get("module") != "Contacts":
        return []
    found = [str(i) for i in ids if isinstance(i, str | int) and not isinstance(i, bool)]
    return [i for i in dict.fromkeys(found) if i.isascii() and i.isdigit() and len(i) <= 40]


class ZohoConnector(PrebuiltConnector):
    vendor = "zoho"
    label = "Zoho CRM"
    default_base_url = "https://www.zohoapis.com"
    needs = ("client_id", "client_secret", "refresh_token")
    preset: ClassVar[dict[str, str]] = {
        "id": "Contacts id",
        "name": "Full_Name",
        "tags": "Tag names (sent on create with the Add Tags API)",
        "owner": "Owner.name",
        "attributes": "Email, Phone, Mobile, Account_Name",
        "orders": "related Deals: Deal_Name, Amount, Stage, Closing_Date",
        "history": "related open Cases: Subject, Status, Case_Number",
        "call record": "Calls: Subject, Call_Type, Call_Start_Time, Call_Duration (mm:ss), "
        "Call_Result, Description, Who_Id (the contact)",
    }

    webhook = "notification API (actions/watch on Contacts), with the token set when subscribing"

    def __init__(self, config: CrmConfig, credentials: Credentials) -> None:
        super().__init__(config, credentials)
        self.tokens = TokenCache(self._fetch_token)

    def webhook_changes(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: float
    ) -> list[str]:
        token = self._webhook_secret()
        return notification_ids(webhook_json(body), token)

    async def _fetch_token(self) -> tuple[str, float | None]:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.credentials.get("client_id"),
            "client_secret": self.credentials.get("client_secret"),
            "refresh_token": self.credentials.get("refresh_token"),
        }
        answer = await self.http.request("POST", self.config.token_url or ACCOUNTS, form=form)
        payload = as_map(answer.payload)
        token = text(payload.get("access_token"), 4096)
        if "error" in payload or not token:
            raise CrmRefused(
                "credentials", f"Zoho refused the refresh token ({error_code(payload)})"
            )
        ttl = payload.get("expires_in")
        return token, float(ttl) if isinstance(ttl, int | float) else None

    async def _auth_headers(self) -> dict[str, str]:
        assert self.tokens is not None
        return {"Authorization": f"Zoho-oauthtoken {await self.tokens.get()}"}

    def _records(self, answer: Answer, what: str) -> list[Any]:
        if answer.status in (204, 304):
            return []
        if answer.status == 400:
            raise CrmRefused("field", f"Zoho refused the {what}: {error_code(answer.payload)}")
        if answer.status != 200:
            raise self._unexpected(what, answer)
        return as_list(as_map(answer.payload, f"Zoho {what} answer").get("data"), "data")

    def _customer(self, item: Any) -> Customer:
        item = as_map(item, "a Zoho contact")
        cid = text(item.get("id"), 40)
        if not cid.isdigit():
            raise CrmError("Zoho contact without a numeric id")
        name = text(item.get("Full_Name")) or " ".join(
            x for x in (text(item.get("First_Name")), text(item.get("Last_Name"))) if x
        )
        tags = tuple(
            t for t in (text(as_map(x).get("name"), 64) for x in as_list(item.get("Tag"))) if t
        )
        attrs: dict[str, Any] = {
            k.lower(): text(item.get(k))
            for k in ("Email", "Phone", "Mobile")
            if isinstance(item.get(k), str)
        }
        if account := text(as_map(item.get("Account_Name")).get("name")):
            attrs["account"] = account
        if link := self.customer_link(cid):
            attrs["crm_url"] = link
        return Customer(
            id=cid,
            name=name or cid,
            tags=tags,
            attributes=attrs,
            owner=text(as_map(item.get("Owner")).get("name"), 64) or None,
        )

    async def _lookup(self, e164: str) -> Customer | None:
        answer = await self._api("GET", "/crm/v2/Contacts/search", params={"phone": e164})
        found = self._records(answer, "phone search")
        return self._customer(found[0]) if found else None

    async def _card(self, customer_id: str) -> CustomerCard | None:
        if not customer_id.isdigit():
            raise CrmError("not a Zoho record id")
        found = self._records(await self._api("GET", f"/crm/v2/Contacts/{customer_id}"), "contact")
        if not found:
            return None
        customer = self._customer(found[0])
        deals = self._records(
            await self._api(
                "GET", f"/crm/v2/Contacts/{customer_id}/Deals", params={"per_page": str(MAX_ROWS)}
            ),
            "related deals",
        )
        cases = self._records(
            await self._api(
                "GET", f"/crm/v2/Contacts/{customer_id}/Cases", params={"per_page": "50"}
            ),
            "related cases",
        )
        open_cases = [c for c in cases if text(as_map(c).get("Status")) != "Closed"]
        return CustomerCard(
            id=customer.id,
            name=customer.name,
            tags=customer.tags,
            owner=customer.owner,
            attributes=customer.attributes,
            orders=tuple(
                row(
                    d,
                    {
                        "reference": "Deal_Name",
                        "amount": "Amount",
                        "status": "Stage",
                        "ordered_at": "Closing_Date",
                    },
                )
                for d in deals[:MAX_ROWS]
            ),
            history=tuple(
                row(c, {"reference": "Case_Number", "subject": "Subject", "status": "Status"})
                for c in open_cases[:MAX_ROWS]
            ),
        )

    def preview(self, record: Mapping[str, Any], contact_id: str) -> Any:
        return {"data": [call_fields(CallSummary.of(record), contact_id)]}

    def _written(self, answer: Answer, what: str) -> str:
        items = as_list(as_map(answer.payload).get("data"))
        first = as_map(items[0]) if items else {}
        if answer.status in (200, 201, 202) and first.get("code") == "SUCCESS":
            return text(as_map(first.get("details")).get("id"), 40)
        code = text(first.get("code"), 60) or error_code(answer.payload)
        if code in ("INVALID_DATA", "MANDATORY_NOT_FOUND"):
            field = text(as_map(first.get("details")).get("api_name"), 60)
            raise CrmRefused("field", f"Zoho refused the {what}: {code} {field}".strip())
        raise CrmError(f"Zoho did not take the {what}: {code or answer.status}")

    async def _write_call(self, call: CallSummary, contact_id: str) -> None:
        who = contact_id if contact_id.isdigit() else ""
        criteria = f"(Subject:equals:{criteria_value(call.title)})"
        found = self._records(
            await self._api("GET", "/crm/v2/Calls/search", params={"criteria": criteria}),
            "call search",
        )
        fields = call_fields(call, who)
        if found:
            fields["id"] = text(as_map(found[0]).get("id"), 40)
            answer = await self._api("PUT", "/crm/v2/Calls", json_body={"data": [fields]})
        else:
            answer = await self._api("POST", "/crm/v2/Calls", json_body={"data": [fields]})
        self._written(answer, "call")

    async def _exists(self, record_id: str) -> bool:
        answer = await self._api("GET", f"/crm/v2/Contacts/{record_id}")
        return bool(self._records(answer, "contact"))

    async def _merge(self, survivor_id: str, merged_ids: list[str]) -> None:
        if not _record_id(survivor_id):
            log.warning("Zoho CRM: merge into %r not sent: not a Zoho record id", survivor_id[:64])
            return
        children: list[str] = []
        for other in dict.fromkeys(merged_ids):
            if other == survivor_id:
                continue
            if not _record_id(other):
                log.warning("Zoho CRM: %r not merged there: not a Zoho record id", other[:64])
            elif await self._exists(other):
                children.append(other)  # else merged already (a repeated delivery) or absent
        if children and not await self._exists(survivor_id):
            log.warning("Zoho CRM: contact %s is not there: merge not sent", survivor_id)
            return
        for start in range(0, len(children), MERGE_CHILDREN):
            batch = children[start : start + MERGE_CHILDREN]
            answer = await self._api(
                "POST",
                f"/crm/v6/Contacts/{survivor_id}/actions/merge",
                json_body={"merge": [{"data": [{"id": c} for c in batch]}]},
            )
            items = as_list(as_map(answer.payload).get("merge"))
            code = text(as_map(items[0]).get("code"), 40) if items else ""
            if answer.status in (200, 201, 202) and code in ("SUCCESS", "SCHEDULED"):
                continue
            code = code or error_code(answer.payload)
            if answer.status == 400:
                raise CrmRefused(
                    "request", f"Zoho refused to merge {batch} into {survivor_id}: {code}"
                )
            raise CrmError(f"Zoho did not take the merge: {code or answer.status}")

    async def _create(self, name: str, e164: str, tags: Sequence[str]) -> Customer:
        first, _, last = name.rpartition(" ")
        body = {"data": [{"First_Name": first, "Last_Name": last or name, "Phone": e164}]}
        new_id = self._written(
            await self._api("POST", "/crm/v2/Contacts", json_body=body), "new contact"
        )
        if not new_id.isdigit():
            raise CrmError("Zoho answered a new contact without a numeric id")
        tagged = await self._add_tags(new_id, tags) if tags else ()
        return Customer(id=new_id, name=name, tags=tagged, attributes={"phone": e164})

    async def _add_tags(self, record_id: str, tags: Sequence[str]) -> tuple[str, ...]:
        """Zoho's Add Tags API (`POST /crm/v2/Contacts/{id}/actions/add_tags?tag_names=`,
        zoho.com/crm/developer/docs/api/v2/add-tags.html): a missing tag is created. The
        contact exists by now, so a refusal here is logged, not raised (a retry of the
        create would make a second contact)."""
        answer = await self._api(
            "POST",
            f"/crm/v2/Contacts/{record_id}/actions/add_tags",
            params={"tag_names": ",".join(tags)},
        )
        try:
            self._written(answer, "tags")
        except CrmError as exc:
            log.warning("Zoho CRM: contact %s created without its tags: %s", record_id, exc)
            return ()
        return tuple(tags)

    async def _changes(self, since: datetime) -> tuple[list[Customer], datetime]:
        stamp = since.astimezone(UTC).replace(microsecond=0).isoformat()
        changed: list[Customer] = []
        cursor = since
        for page in range(1, MAX_PAGES + 1):
            answer = await self._api(
                "GET",
                "/crm/v2/Contacts",
                params={
                    "sort_by": "Modified_Time",
                    "sort_order": "asc",
                    "page": str(page),
                    "per_page": "200",
                },
                headers={"If-Modified-Since": stamp},
            )
            for item in self._records(answer, "changed contacts"):
                changed.append(self._customer(item))
                with contextlib.suppress(ValueError):
                    cursor = max(
                        cursor, datetime.fromisoformat(text(as_map(item).get("Modified_Time"), 40))
                    )
            info = as_map(as_map(answer.payload).get("info")) if answer.status == 200 else {}
            if info.get("more_records") is not True:
                break
        return changed, cursor
