"""HubSpot: a private-app token; contacts searched by phone; calls as Call engagements.

Follows HubSpot's CRM API v3 reference (developers.hubspot.com/docs/api/crm/search and
/docs/api/crm/calls, read 2026-12): `POST /crm/v3/objects/{object}/search` with
`filterGroups` (groups OR-ed, filters inside AND-ed; at most 5 groups), answers
`{"total", "results": [{"id", "properties"}], "paging": {"next": {"after"}}}`;
`POST /crm/v3/objects/calls` with `properties` and `associations` (type 194: call to
contact); `PATCH /crm/v3/objects/calls/{id}`; `POST /crm/v3/objects/contacts/merge` with
`{"primaryObjectId", "objectIdToMerge"}` (/docs/api-reference/crm-contacts-v3, one pair per
request, answers the merged contact). Errors carry `category`
(`MISSING_SCOPES`, `VALIDATION_ERROR`); 429 when over the rate limit.

A call is found again by `hs_call_title` (the call's marker) before it is written, so a
repeated delivery updates the engagement. HubSpot's search index lags writes by a few
seconds, so two deliveries within that window could still create two: the outbox spaces
its retries further apart than that.

Webhooks (developers.hubspot.com/docs/api/webhooks and /docs/api/webhooks/validating-requests,
"Validate the v3 request signature", read 2026-12): a public app subscribed to `contact.*`
events posts a JSON array of events (`subscriptionType`, `objectId`, for merges
`primaryObjectId`/`mergedObjectIds`/`newObjectId`; at most 100 per request) with
`X-HubSpot-Signature-v3` = base64(HMAC-SHA256(app client secret, method + URI + body +
timestamp)) and `X-HubSpot-Request-Timestamp` (ms); a timestamp older than 5 minutes is
rejected. The URI is the URL HubSpot called, with the characters the guide lists decoded.

A merge is made idempotent by reading each contact to merge first: HubSpot answers a merged
id with the contact it now belongs to, so a different id (or 404) means there is nothing
left to merge. Ids that cannot be HubSpot contact ids (not digits) are skipped, logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from bridge.connectors.prebuilt.base import (
    MAX_ROWS,
    PrebuiltConnector,
    WebhookRefused,
    national_digits,
    webhook_json,
)
from bridge.connectors.prebuilt.calls import CallSummary
from bridge.connectors.prebuilt.fields import as_list, as_map, row, text
from bridge.connectors.prebuilt.http import error_code
from bridge.errors import CrmError, CrmRefused
from bridge.models import Customer, CustomerCard

__all__ = ["HubSpotConnector", "call_properties", "contact_ids", "verify_signature_v3"]

log = logging.getLogger(__name__)
_OBJECT_ID = re.compile(r"[0-9]{1,20}")

CONTACT_PROPERTIES = [
    "firstname",
    "lastname",
    "email",
    "company",
    "phone",
    "mobilephone",
    "hubspot_owner_id",
    "lifecyclestage",
    "hs_lead_status",
    "lastmodifieddate",
]
CALL_TO_CONTACT = 194  # HUBSPOT_DEFINED association type: call -> contact
# hs_call_disposition takes the GUID of a call outcome; these are HubSpot's defaults.
OUTCOMES = {
    "answered": "f240bbac-87c9-4f6e-bf70-924b57d47db7",  # Connected
    "unanswered": "73a0d17f-1163-4015-bdd5-ec830791da20",  # No answer
    "abandoned": "73a0d17f-1163-4015-bdd5-ec830791da20",
}
STATUS = {"answered": "COMPLETED", "unanswered": "NO_ANSWER", "abandoned": "NO_ANSWER"}
MAX_PAGES = 20
SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_SKEW_MS = 5 * 60 * 1000
# The percent-escapes the validation guide decodes in the URI before signing.
_URI_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_URI_DECODE), re.IGNORECASE)
MAX_EVENTS = 1000


def signed_uri(url: str) -> str:
    return _ESCAPE.sub(lambda m: _URI_DECODE[m.group(0).upper()], url)


def signature_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """What HubSpot puts in `X-HubSpot-Signature-v3` for this request."""
    source = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature_v3(
    secret: str, method: str, url: str, headers: Mapping[str, str], body: bytes, now: float
) -> None:
    """Raise `WebhookRefused(401)` unless this request is HubSpot's, signed < 5 min ago."""
    given = headers.get(SIGNATURE_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    if not given or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 16:
        raise WebhookRefused(401, f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    if abs(now * 1000 - int(stamp)) > MAX_SKEW_MS:
        raise WebhookRefused(401, "the request timestamp is more than 5 minutes off")
    expected = signature_v3(secret, method, url, body, stamp)
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise WebhookRefused(401, "bad signature")


def contact_ids(events: Any) -> list[str]:
    """The contacts a HubSpot webhook batch touches (other objects' events are ignored)."""
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise WebhookRefused(400, "a HubSpot webhook body is a list of events")
    ids: list[str] = []
    for event in events:
        if not isinstance(event, dict):
            raise WebhookRefused(400, "a HubSpot event is an object")
        kind = event.get("subscriptionType")
        if not isinstance(kind, str) or not kind.startswith("contact."):
            continue
        merged = event.get("mergedObjectIds")
        candidates = [
            event.get("objectId"),
            event.get("primaryObjectId"),
            event.get("newObjectId"),
            *(merged if isinstance(merged, list) else []),
        ]
        for value in candidates:
            cid = str(value) if isinstance(value, int) and not isinstance(value, bool) else ""
            if _OBJECT_ID.fullmatch(cid) and cid not in ids:
                ids.append(cid)
    return ids


def call_properties(call: CallSummary) -> dict[str, Any]:
    props: dict[str, Any] = {
        "hs_timestamp": call.started_at.isoformat().replace("+00:00", "Z"),
        "hs_call_title": call.title,
        "hs_call_body": call.description(),
        "hs_call_duration": str(call.duration_s * 1000),  # milliseconds
        "hs_call_direction": "INBOUND" if call.inbound else "OUTBOUND",
        "hs_call_status": STATUS.get(call.outcome, "COMPLETED"),
        "hs_call_disposition": OUTCOMES.get(call.outcome, OUTCOMES["answered"]),
    }
    if call.caller:
        props["hs_call_from_number" if call.inbound else "hs_call_to_number"] = call.caller
    if call.recording_url:
        props["hs_call_recording_url"] = call.recording_url
    return props


def _call_body(call: CallSummary, contact_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"properties": call_properties(call)}
    if contact_id:
        kind = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CALL_TO_CONTACT}
        body["associations"] = [{"to": {"id": contact_id}, "types": [kind]}]
    return body


def _eq(prop: str, value: str) -> dict[str, Any]:
    return {"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}


class HubSpotConnector(PrebuiltConnector):
    vendor = "hubspot"
    label = "HubSpot"
    default_base_url = "https://api.hubapi.com"
    needs = ("token",)
    preset: ClassVar[dict[str, str]] = {
        "id": "contact id",
        "name": "firstname + lastname (else email, company)",
        "tags": "lifecyclestage, hs_lead_status; sent on create: [crm] tags_field (a custom "
        "property, values joined by ;)",
        "owner": "hubspot_owner_id",
        "attributes": "email, company, phone, mobilephone",
        "orders": "associated deals: dealname, amount, dealstage, closedate",
        "history": "associated open tickets: subject, hs_pipeline_stage, createdate",
        "call record": "Call engagement: hs_call_title, hs_timestamp, hs_call_duration (ms), "
        "hs_call_direction, hs_call_status, hs_call_disposition, hs_call_body, "
        "hs_call_recording_url, association to the contact",
    }

    webhook = "webhooks v3 (contact.* subscriptions), signed with the app's client secret"

    async def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.get('token')}"}

    def webhook_changes(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: float
    ) -> list[str]:
        verify_signature_v3(self._webhook_secret(), method, url, headers, body, now)
        return contact_ids(webhook_json(body))

    async def _search(self, obj: str, body: dict[str, Any]) -> Mapping[str, Any]:
        answer = await self._api("POST", f"/crm/v3/objects/{obj}/search", json_body=body)
        if answer.status == 400:
            raise CrmRefused("field", f"HubSpot refused the {obj} search (unknown property?)")
        if answer.status != 200:
            raise self._unexpected(f"{obj} search", answer)
        return as_map(answer.payload, f"HubSpot {obj} search answer")

    def _customer(self, item: Any) -> Customer:
        item = as_map(item, "a HubSpot contact")
        cid = text(item.get("id"), 64)
        if not cid:
            raise CrmError("HubSpot contact without id")
        p = as_map(item.get("properties"))
        name = " ".join(x for x in (text(p.get("firstname")), text(p.get("lastname"))) if x)
        tags = tuple(
            t for t in (text(p.get("lifecyclestage"), 64), text(p.get("hs_lead_status"), 64)) if t
        )
        attrs = {
            k: text(p.get(k)) for k in ("email", "company", "phone", "mobilephone") if p.get(k)
        }
        if link := self.customer_link(cid):
            attrs["crm_url"] = link
        return Customer(
            id=cid,
            name=name or text(p.get("email")) or text(p.get("company")) or cid,
            tags=tags,
            attributes=attrs,
            owner=text(p.get("hubspot_owner_id"), 64) or None,
        )

    async def _lookup(self, e164: str) -> Customer | None:
        body = {
            "filterGroups": [
                _eq("phone", e164),
                _eq("mobilephone", e164),
                _eq("hs_searchable_calculated_phone_number", national_digits(e164)),
            ],
            "properties": CONTACT_PROPERTIES,
            "limit": 1,
        }
        results = as_list((await self._search("contacts", body)).get("results"), "results")
        return self._customer(results[0]) if results else None

    async def _card(self, customer_id: str) -> CustomerCard | None:
        answer = await self._api(
            "GET",
            f"/crm/v3/objects/contacts/{quote(customer_id, safe='')}",
            params={"properties": ",".join(CONTACT_PROPERTIES)},
        )
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self._unexpected("contact read", answer)
        customer = self._customer(answer.payload)
        linked = [{"propertyName": "associations.contact", "operator": "EQ", "value": customer_id}]
        deals = await self._search(
            "deals",
            {
                "filterGroups": [{"filters": linked}],
                "properties": ["dealname", "amount", "dealstage", "closedate"],
                "sorts": [{"propertyName": "closedate", "direction": "DESCENDING"}],
                "limit": MAX_ROWS,
            },
        )
        open_ticket = {"propertyName": "hs_is_closed", "operator": "NEQ", "value": "true"}
        tickets = await self._search(
            "tickets",
            {
                "filterGroups": [{"filters": [*linked, open_ticket]}],
                "properties": ["subject", "hs_pipeline_stage", "createdate", "hs_ticket_priority"],
                "limit": MAX_ROWS,
            },
        )
        keys_deal = {
            "reference": "dealname",
            "amount": "amount",
            "status": "dealstage",
            "ordered_at": "closedate",
        }
        keys_case = {
            "subject": "subject",
            "status": "hs_pipeline_stage",
            "at": "createdate",
            "priority": "hs_ticket_priority",
        }
        return CustomerCard(
            id=customer.id,
            name=customer.name,
            tags=customer.tags,
            owner=customer.owner,
            attributes=customer.attributes,
            orders=tuple(
                row(as_map(d).get("properties"), keys_deal)
                for d in as_list(deals.get("results"))[:MAX_ROWS]
            ),
            history=tuple(
                row(as_map(t).get("properties"), keys_case)
                for t in as_list(tickets.get("results"))[:MAX_ROWS]
            ),
        )

    def preview(self, record: Mapping[str, Any], contact_id: str) -> Any:
        return _call_body(CallSummary.of(record), contact_id)

    async def _write_call(self, call: CallSummary, contact_id: str) -> None:
        found = await self._search(
            "calls",
            {
                "filterGroups": [_eq("hs_call_title", call.title)],
                "properties": ["hs_call_title"],
                "limit": 1,
            },
        )
        existing = as_list(found.get("results"))
        if existing:
            call_id = text(as_map(existing[0]).get("id"), 64)
            answer = await self._api(
                "PATCH",
                f"/crm/v3/objects/calls/{quote(call_id, safe='')}",
                json_body={"properties": call_properties(call)},
            )
        else:
            answer = await self._api(
                "POST", "/crm/v3/objects/calls", json_body=_call_body(call, contact_id)
            )
        if answer.status == 400:
            raise CrmRefused("field", "HubSpot refused the call's properties (VALIDATION_ERROR)")
        if answer.status not in (200, 201):
            raise self._unexpected("call write", answer)

    async def _merge(self, survivor_id: str, merged_ids: list[str]) -> None:
        if not _OBJECT_ID.fullmatch(survivor_id):
            log.warning(
                "HubSpot: merge into %r not sent: not a HubSpot contact id", survivor_id[:64]
            )
            return
        for other in merged_ids:
            if other == survivor_id or not _OBJECT_ID.fullmatch(other):
                log.warning("HubSpot: %r not merged there: not a HubSpot contact id", other[:64])
                continue
            if await self._current_id(other) != other:
                continue  # already merged (a repeated delivery) or never in HubSpot
            answer = await self._api(
                "POST",
                "/crm/v3/objects/contacts/merge",
                json_body={"primaryObjectId": survivor_id, "objectIdToMerge": other},
            )
            if answer.status == 400:
                raise CrmRefused("request", f"HubSpot refused to merge {other} into {survivor_id}")
            if answer.status == 404:
                log.warning(
                    "HubSpot: contact %s is not there: merge of %s not sent", survivor_id, other
                )
                return
            if answer.status != 200:
                raise self._unexpected("contact merge", answer)
            merged_id = text(as_map(answer.payload).get("id"), 64)
            if merged_id and merged_id != survivor_id:
                log.info("HubSpot: %s and %s are now contact %s", survivor_id, other, merged_id)

    async def _current_id(self, contact_id: str) -> str | None:
        """The id HubSpot answers for `contact_id` (another one once merged); None: absent."""
        answer = await self._api(
            "GET",
            f"/crm/v3/objects/contacts/{quote(contact_id, safe='')}",
            params={"properties": "email"},
        )
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self._unexpected("contact read", answer)
        return text(as_map(answer.payload).get("id"), 64) or None

    async def _create(self, name: str, e164: str, tags: Sequence[str]) -> Customer:
        first, _, last = name.partition(" ")
        props = {"firstname": first, "lastname": last, "phone": e164, **self._tags_value(tags)}
        answer = await self._api(
            "POST", "/crm/v3/objects/contacts", json_body={"properties": props}
        )
        if answer.status == 409:
            raise CrmRefused("request", "HubSpot already has this contact")
        if answer.status == 400:
            raise CrmRefused(
                "field",
                f"HubSpot refused the new contact's properties ({error_code(answer.payload)})",
            )
        if answer.status != 201:
            raise self._unexpected("contact create", answer)
        return self._customer(answer.payload)

    async def _changes(self, since: datetime) -> tuple[list[Customer], datetime]:
        ms = str(int(since.timestamp() * 1000))
        body: dict[str, Any] = {
            "filterGroups": [
                {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": ms}]}
            ],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": CONTACT_PROPERTIES,
            "limit": 100,
        }
        changed: list[Customer] = []
        cursor = since
        for _ in range(MAX_PAGES):
            page = await self._search("contacts", body)
            for item in as_list(page.get("results"), "results"):
                changed.append(self._customer(item))
                stamp = text(as_map(as_map(item).get("properties")).get("lastmodifieddate"), 40)
                cursor = max(cursor, _parse_time(stamp) or cursor)
            after = as_map(as_map(page.get("paging")).get("next")).get("after")
            if not isinstance(after, str) or not after:
                break
            body["after"] = after
        return changed, cursor


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
