"""SuiteCRM 8: the V8 JSON:API with OAuth2 client credentials; Contacts by phone; Calls.

Follows SuiteCRM's JSON API developer guide (docs.suitecrm.com/developer/api/
developer-setup-guide/json-api/, read 2026-12) and its swagger: SuiteCRM 8 serves the V8
API under `/legacy/Api`; `POST /legacy/Api/access_token` (form `grant_type=
client_credentials`, `client_id`, `client_secret`) -> `{"token_type": "Bearer",
"expires_in", "access_token"}`; `GET /legacy/Api/V8/module/{Module}?filter[field][eq]=...
&filter[operator]=or&fields[Module]=...&page[size]=N` -> `{"data": [{"type", "id",
"attributes"}], "meta": {"total-pages"}}`; `GET .../{Module}/{id}/relationships/{link}` ->
`{"data": [{"type", "id"}]}`; writes are `POST|PATCH /legacy/Api/V8/module` with
`{"data": {"type", "id"?, "attributes"}}` in `application/vnd.api+json`. Errors are JSON:API
`{"errors": {"status", "title", "detail"}}`.

A repeated delivery finds its call by `name` (the call's marker) and updates it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from bridge.config import CrmConfig
from bridge.connectors.prebuilt.base import MAX_ROWS, PrebuiltConnector
from bridge.connectors.prebuilt.calls import CallSummary
from bridge.connectors.prebuilt.credentials import Credentials
from bridge.connectors.prebuilt.fields import as_list, as_map, row, text
from bridge.connectors.prebuilt.http import Answer
from bridge.connectors.prebuilt.oauth import TokenCache
from bridge.errors import CrmError, CrmRefused
from bridge.models import Customer, CustomerCard

__all__ = ["SuiteCrmConnector", "call_attributes"]

API = "/legacy/Api"
JSONAPI = "application/vnd.api+json"
_UUID = re.compile(r"^[0-9a-fA-F-]{1,36}$")
CONTACT_FIELDS = (
    "first_name,last_name,email1,phone_work,phone_mobile,phone_home,account_name,"
    "assigned_user_name,date_modified"
)
PHONE_FIELDS = ("phone_work", "phone_mobile", "phone_home")
MAX_PAGES = 20


def call_attributes(call: CallSummary, contact_id: str) -> dict[str, Any]:
    hours, rest = divmod(call.duration_s, 3600)
    attrs: dict[str, Any] = {
        "name": call.title,
        "direction": "Inbound" if call.inbound else "Outbound",
        "status": "Held" if call.outcome == "answered" else "Not Held",
        "date_start": call.started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "duration_hours": hours,
        "duration_minutes": rest // 60,
        "description": call.description(),
    }
    if contact_id:
        attrs["parent_type"] = "Contacts"
        attrs["parent_id"] = contact_id
    return attrs


def _uuid(value: str) -> str:
    if not _UUID.match(value):
        raise CrmError("not a SuiteCRM record id")
    return value


class SuiteCrmConnector(PrebuiltConnector):
    vendor = "suitecrm"
    no_merge_api = "offers no merge in its V8 JSON:API (only Merge Duplicates in its UI)"
    label = "SuiteCRM"
    needs = ("client_id", "client_secret")
    preset: ClassVar[dict[str, str]] = {
        "id": "Contacts id",
        "name": "first_name + last_name",
        "tags": "sent on create: [crm] tags_field (a custom field, e.g. tags_c, joined by ;)",
        "owner": "assigned_user_name",
        "attributes": "email1, phone_work, phone_mobile, phone_home, account_name",
        "orders": "related opportunities: name, amount, sales_stage, date_closed",
        "history": "related open cases: case_number, name, status, date_entered",
        "call record": "Calls: name, direction, status, date_start, duration_hours, "
        "duration_minutes, description, parent_type=Contacts, parent_id",
    }

    def __init__(self, config: CrmConfig, credentials: Credentials) -> None:
        super().__init__(config, credentials)
        self.tokens = TokenCache(self._fetch_token, default_ttl_s=3600.0)

    async def _fetch_token(self) -> tuple[str, float | None]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.credentials.get("client_id"),
            "client_secret": self.credentials.get("client_secret"),
        }
        url = self.config.token_url or f"{self.base_url}{API}/access_token"
        answer = await self.http.request("POST", url, form=form)
        payload = as_map(answer.payload)
        token = text(payload.get("access_token"), 8192)
        if answer.status != 200 or not token:
            raise CrmRefused("credentials", "SuiteCRM refused the client credentials")
        ttl = payload.get("expires_in")
        return token, float(ttl) if isinstance(ttl, int | float) else None

    async def _auth_headers(self) -> dict[str, str]:
        assert self.tokens is not None
        return {"Authorization": f"Bearer {await self.tokens.get()}", "Accept": JSONAPI}

    def _data(self, answer: Answer, what: str) -> Any:
        if answer.status == 404:
            return None
        if answer.status == 400:
            errors = as_map(as_map(answer.payload).get("errors"))
            raise CrmRefused(
                "field", f"SuiteCRM refused the {what}: {text(errors.get('title'), 120)}"
            )
        if not 200 <= answer.status < 300:
            raise self._unexpected(what, answer)
        return as_map(answer.payload, f"SuiteCRM {what} answer").get("data")

    def _customer(self, item: Any) -> Customer:
        item = as_map(item, "a SuiteCRM contact")
        cid = _uuid(text(item.get("id"), 36))
        a = as_map(item.get("attributes"))
        name = " ".join(x for x in (text(a.get("first_name")), text(a.get("last_name"))) if x)
        attrs = {
            k: text(a.get(k))
            for k in ("email1", *PHONE_FIELDS, "account_name")
            if isinstance(a.get(k), str) and a.get(k)
        }
        if link := self.customer_link(cid):
            attrs["crm_url"] = link
        return Customer(
            id=cid,
            name=name or cid,
            attributes=attrs,
            owner=text(a.get("assigned_user_name"), 64) or None,
        )

    async def _lookup(self, e164: str) -> Customer | None:
        params = {"filter[operator]": "or", "fields[Contacts]": CONTACT_FIELDS, "page[size]": "1"}
        params |= {f"filter[{f}][eq]": e164 for f in PHONE_FIELDS}
        found = as_list(
            self._data(
                await self._api("GET", f"{API}/V8/module/Contacts", params=params), "phone search"
            ),
            "data",
        )
        return self._customer(found[0]) if found else None

    async def _related(self, cid: str, link: str, module: str, fields: str) -> list[Any]:
        refs = as_list(
            self._data(
                await self._api("GET", f"{API}/V8/module/Contacts/{cid}/relationships/{link}"), link
            )
        )
        out = []
        for ref in refs[: MAX_ROWS * 2]:
            rid = _uuid(text(as_map(ref).get("id"), 36))
            item = self._data(
                await self._api(
                    "GET", f"{API}/V8/module/{module}/{rid}", params={f"fields[{module}]": fields}
                ),
                link,
            )
            if item is not None:
                out.append(as_map(as_map(item).get("attributes")))
        return out

    async def _card(self, customer_id: str) -> CustomerCard | None:
        cid = _uuid(customer_id)
        item = self._data(
            await self._api(
                "GET",
                f"{API}/V8/module/Contacts/{cid}",
                params={"fields[Contacts]": CONTACT_FIELDS},
            ),
            "contact",
        )
        if item is None:
            return None
        customer = self._customer(item)
        deals = await self._related(
            cid, "opportunities", "Opportunities", "name,amount,sales_stage,date_closed"
        )
        cases = await self._related(
            cid, "cases", "Cases", "case_number,name,status,state,date_entered"
        )
        open_cases = [c for c in cases if text(c.get("state")) != "Closed"]
        return CustomerCard(
            id=customer.id,
            name=customer.name,
            owner=customer.owner,
            attributes=customer.attributes,
            orders=tuple(
                row(
                    d,
                    {
                        "reference": "name",
                        "amount": "amount",
                        "status": "sales_stage",
                        "ordered_at": "date_closed",
                    },
                )
                for d in deals[:MAX_ROWS]
            ),
            history=tuple(
                row(
                    c,
                    {
                        "reference": "case_number",
                        "subject": "name",
                        "status": "status",
                        "at": "date_entered",
                    },
                )
                for c in open_cases[:MAX_ROWS]
            ),
        )

    def preview(self, record: Mapping[str, Any], contact_id: str) -> Any:
        return {
            "data": {
                "type": "Calls",
                "attributes": call_attributes(CallSummary.of(record), contact_id),
            }
        }

    async def _write_call(self, call: CallSummary, contact_id: str) -> None:
        who = contact_id if _UUID.match(contact_id or "-") and contact_id else ""
        params = {"filter[name][eq]": call.title, "fields[Calls]": "name", "page[size]": "1"}
        found = as_list(
            self._data(
                await self._api("GET", f"{API}/V8/module/Calls", params=params), "call search"
            )
        )
        data: dict[str, Any] = {"type": "Calls", "attributes": call_attributes(call, who)}
        headers = {"Content-Type": JSONAPI}
        if found:
            data["id"] = _uuid(text(as_map(found[0]).get("id"), 36))
            answer = await self._api(
                "PATCH", f"{API}/V8/module", json_body={"data": data}, headers=headers
            )
        else:
            answer = await self._api(
                "POST", f"{API}/V8/module", json_body={"data": data}, headers=headers
            )
        self._data(answer, "call")

    async def _create(self, name: str, e164: str, tags: Sequence[str]) -> Customer:
        first, _, last = name.rpartition(" ")
        attributes = {"first_name": first, "last_name": last or name, "phone_work": e164}
        data = {"type": "Contacts", "attributes": attributes | self._tags_value(tags)}
        answer = await self._api(
            "POST", f"{API}/V8/module", json_body={"data": data}, headers={"Content-Type": JSONAPI}
        )
        return self._customer(self._data(answer, "new contact"))

    async def _changes(self, since: datetime) -> tuple[list[Customer], datetime]:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        changed: list[Customer] = []
        cursor = since
        for page in range(1, MAX_PAGES + 1):
            params = {
                "filter[date_modified][gt]": stamp,
                "sort": "date_modified",
                "fields[Contacts]": CONTACT_FIELDS,
                "page[number]": str(page),
                "page[size]": "100",
            }
            answer = await self._api("GET", f"{API}/V8/module/Contacts", params=params)
            for item in as_list(self._data(answer, "changed contacts"), "data"):
                changed.append(self._customer(item))
                raw = text(as_map(as_map(item).get("attributes")).get("date_modified"), 30)
                with contextlib.suppress(ValueError):
                    cursor = max(
                        cursor, datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                    )
            pages = as_map(as_map(answer.payload).get("meta")).get("total-pages")
            if not isinstance(pages, int) or page >= pages:
                break
        return changed, cursor
