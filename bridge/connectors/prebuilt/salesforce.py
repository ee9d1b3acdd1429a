"""Salesforce: OAuth 2.0 client credentials; SOSL in phone fields; calls as Tasks.

Follows the Salesforce REST API Developer Guide (API v60.0) and the OAuth 2.0 Client
Credentials Flow for server-to-server integration (help.salesforce.com, read 2026-12):

- token: `POST /services/oauth2/token` (form `grant_type=client_credentials`, `client_id`,
  `client_secret`) on the org's My Domain -> `{"access_token", "instance_url",
  "token_type": "Bearer", "issued_at"}` (no lifetime given: the session timeout applies, so
  the token is renewed every 15 min and on `INVALID_SESSION_ID`); a bad client is 400
  `{"error": "invalid_client"}`.
- search: `GET /services/data/v60.0/search?q=FIND {...} IN PHONE FIELDS RETURNING Contact(...)`
  -> `{"searchRecords": [...]}` (SOSL reserved characters escaped with a backslash).
- query: `GET /services/data/v60.0/query?q=SOQL` -> `{"totalSize", "done", "records",
  "nextRecordsUrl"}`; errors are lists `[{"message", "errorCode"}]` (`INVALID_FIELD`).
- the call: a Task (`TaskSubtype` Call) with `CallDurationInSeconds`, `CallType`
  (Inbound/Outbound), `CallDisposition`, and `CallObject` = the call id, which is how a
  repeated delivery finds the Task again (`PATCH /sobjects/Task/{id}`, 204).
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
from bridge.connectors.prebuilt.http import error_code
from bridge.connectors.prebuilt.oauth import TokenCache
from bridge.errors import CrmError, CrmRefused
from bridge.models import Customer, CustomerCard

__all__ = ["SalesforceConnector", "soql_quote", "sosl_escape", "task_fields"]

API = "/services/data/v60.0"
_SF_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")
_SOSL_RESERVED = set("?&|!{}[]()^~*:\\\"'+-")
CONTACT_FIELDS = (
    "Id, Name, Email, Phone, MobilePhone, OwnerId, Owner.Name, AccountId, Account.Name, "
    "LastModifiedDate"
)
MAX_PAGES = 20


def sosl_escape(value: str) -> str:
    return "".join("\\" + c if c in _SOSL_RESERVED else c for c in value)


def soql_quote(value: str) -> str:
    """A SOQL string literal (backslash and quote escaped; control characters dropped)."""
    body = "".join(c for c in value if c.isprintable()).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{body}'"


def task_fields(call: CallSummary, contact_id: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "Subject": f"Call {'from' if call.inbound else 'to'} {call.caller or 'unknown'}"[:255],
        "TaskSubtype": "Call",
        "Status": "Completed",
        "ActivityDate": call.started_at.date().isoformat(),
        "CallDurationInSeconds": call.duration_s,
        "CallType": "Inbound" if call.inbound else "Outbound",
        "CallDisposition": (call.disposition or call.outcome)[:255],
        "CallObject": call.call_id[:255],
        "Description": call.description()[:32000],
    }
    if contact_id:
        fields["WhoId"] = contact_id
    return fields


def _checked_id(value: str) -> str:
    if not _SF_ID.match(value):
        raise CrmError("not a Salesforce record id")
    return value


class SalesforceConnector(PrebuiltConnector):
    vendor = "salesforce"
    no_merge_api = (
        "merges records only through its SOAP API (merge()) or Apex (Database.merge),"
        " not the REST API this connector uses"
    )
    label = "Salesforce"
    needs = ("client_id", "client_secret")
    # Outbound Messages are SOAP posts set up per org in a Flow or workflow rule, not signed
    # (only the org id in the envelope and Salesforce's client certificate vouch for them);
    # Change Data Capture needs a streaming (CometD / Pub/Sub gRPC) client. Polling
    # `LastModifiedDate` every `[crm] poll_s` is one SOQL query and needs nothing set up.
    polling_only = (
        "Outbound Messages are unsigned SOAP set up per org, Change Data Capture needs a"
        " streaming client"
    )
    preset: ClassVar[dict[str, str]] = {
        "id": "Contact.Id",
        "name": "Contact.Name",
        "tags": "sent on create: [crm] tags_field (a custom field, e.g. Tags__c, joined by ;)",
        "owner": "Contact.Owner.Name",
        "attributes": "Email, Phone, MobilePhone, Account.Name, AccountId",
        "orders": "Opportunities of the contact's account: Name, Amount, StageName, CloseDate",
        "history": "open Cases of the contact: CaseNumber, Subject, Status, CreatedDate",
        "call record": "Task: Subject, TaskSubtype=Call, Status=Completed, ActivityDate, "
        "CallDurationInSeconds, CallType, CallDisposition, CallObject (= call id), "
        "Description, WhoId",
    }

    def __init__(self, config: CrmConfig, credentials: Credentials) -> None:
        super().__init__(config, credentials)
        self.tokens = TokenCache(self._fetch_token, default_ttl_s=900.0)

    async def _fetch_token(self) -> tuple[str, float | None]:
        url = self.config.token_url or self.base_url + "/services/oauth2/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": self.credentials.get("client_id"),
            "client_secret": self.credentials.get("client_secret"),
        }
        answer = await self.http.request("POST", url, form=form)
        payload = as_map(answer.payload)
        if answer.status == 400 or "error" in payload:
            raise CrmRefused(
                "credentials", f"Salesforce refused the client credentials ({error_code(payload)})"
            )
        token = text(payload.get("access_token"), 4096)
        if answer.status != 200 or not token:
            raise CrmError("Salesforce token answer without access_token")
        return token, None

    async def _query(self, soql: str) -> list[Any]:
        answer = await self._api("GET", f"{API}/query", params={"q": soql})
        records: list[Any] = []
        for _ in range(MAX_PAGES):
            self._raise_for(answer, "query")
            page = as_map(answer.payload, "Salesforce query answer")
            records.extend(as_list(page.get("records"), "records"))
            nxt = page.get("nextRecordsUrl")
            if page.get("done", True) or not isinstance(nxt, str) or not nxt.startswith(API):
                break
            answer = await self._api("GET", nxt)
        return records

    def _raise_for(self, answer: Any, what: str) -> None:
        if answer.status == 400:
            code = error_code(answer.payload)
            kind = "field" if code in ("INVALID_FIELD", "INVALID_TYPE") else "request"
            raise CrmRefused(kind, f"Salesforce refused the {what}: {code or 'HTTP 400'}")
        if not 200 <= answer.status < 300:
            raise self._unexpected(what, answer)

    def _customer(self, item: Any) -> Customer:
        item = as_map(item, "a Salesforce contact")
        cid = _checked_id(text(item.get("Id"), 18))
        owner = as_map(item.get("Owner"))
        account = as_map(item.get("Account"))
        attrs = {
            k.lower(): text(item.get(k)) for k in ("Email", "Phone", "MobilePhone") if item.get(k)
        }
        if account.get("Name"):
            attrs["account"] = text(account.get("Name"))
        if item.get("AccountId"):
            attrs["account_id"] = text(item.get("AccountId"), 18)
        if link := self.customer_link(cid):
            attrs["crm_url"] = link
        return Customer(
            id=cid,
            name=text(item.get("Name")) or cid,
            tags=(),
            attributes=attrs,
            owner=text(owner.get("Name") or item.get("OwnerId"), 64) or None,
        )

    async def _lookup(self, e164: str) -> Customer | None:
        sosl = (
            f"FIND {{{sosl_escape(e164)}}} IN PHONE FIELDS "
            f"RETURNING Contact({CONTACT_FIELDS} LIMIT 1)"
        )
        answer = await self._api("GET", f"{API}/search", params={"q": sosl})
        self._raise_for(answer, "phone search")
        found = as_list(
            as_map(answer.payload, "Salesforce search answer").get("searchRecords"), "searchRecords"
        )
        return self._customer(found[0]) if found else None

    async def _card(self, customer_id: str) -> CustomerCard | None:
        cid = soql_quote(_checked_id(customer_id))
        contacts = await self._query(f"SELECT {CONTACT_FIELDS} FROM Contact WHERE Id = {cid}")
        if not contacts:
            return None
        customer = self._customer(contacts[0])
        orders: list[Any] = []
        account = customer.attributes.get("account_id")
        if isinstance(account, str) and _SF_ID.match(account):
            orders = await self._query(
                "SELECT Name, Amount, StageName, CloseDate FROM Opportunity "
                f"WHERE AccountId = {soql_quote(account)} ORDER BY CloseDate DESC LIMIT {MAX_ROWS}"
            )
        cases = await self._query(
            "SELECT CaseNumber, Subject, Status, CreatedDate FROM Case "
            f"WHERE ContactId = {cid} AND IsClosed = false "
            f"ORDER BY CreatedDate DESC LIMIT {MAX_ROWS}"
        )
        keys_order = {
            "reference": "Name",
            "amount": "Amount",
            "status": "StageName",
            "ordered_at": "CloseDate",
        }
        keys_case = {
            "reference": "CaseNumber",
            "subject": "Subject",
            "status": "Status",
            "at": "CreatedDate",
        }
        return CustomerCard(
            id=customer.id,
            name=customer.name,
            tags=customer.tags,
            owner=customer.owner,
            attributes=customer.attributes,
            orders=tuple(row(o, keys_order) for o in orders[:MAX_ROWS]),
            history=tuple(row(c, keys_case) for c in cases[:MAX_ROWS]),
        )

    def preview(self, record: Mapping[str, Any], contact_id: str) -> Any:
        return task_fields(CallSummary.of(record), contact_id)

    async def _write_call(self, call: CallSummary, contact_id: str) -> None:
        who = contact_id if _SF_ID.match(contact_id) else ""
        found = await self._query(
            f"SELECT Id FROM Task WHERE CallObject = {soql_quote(call.call_id)} LIMIT 1"
        )
        fields = task_fields(call, who)
        if found:
            task_id = _checked_id(text(as_map(found[0]).get("Id"), 18))
            answer = await self._api("PATCH", f"{API}/sobjects/Task/{task_id}", json_body=fields)
        else:
            answer = await self._api("POST", f"{API}/sobjects/Task", json_body=fields)
        self._raise_for(answer, "Task")

    async def _create(self, name: str, e164: str, tags: Sequence[str]) -> Customer:
        first, _, last = name.rpartition(" ")
        body = {"FirstName": first, "LastName": last or name, "Phone": e164}
        body |= self._tags_value(tags)
        answer = await self._api("POST", f"{API}/sobjects/Contact", json_body=body)
        self._raise_for(answer, "new Contact")
        new_id = _checked_id(text(as_map(answer.payload).get("id"), 18))
        return Customer(id=new_id, name=name, attributes={"phone": e164})

    async def _changes(self, since: datetime) -> tuple[list[Customer], datetime]:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        records = await self._query(
            f"SELECT {CONTACT_FIELDS} FROM Contact WHERE LastModifiedDate > {stamp} "
            "ORDER BY LastModifiedDate ASC LIMIT 2000"
        )
        cursor = since
        changed = []
        for item in records:
            changed.append(self._customer(item))
            raw = text(as_map(item).get("LastModifiedDate"), 40)
            with contextlib.suppress(ValueError):
                cursor = max(cursor, datetime.fromisoformat(raw.replace("Z", "+00:00")))
        return changed, cursor
