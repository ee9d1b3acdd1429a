"""A fake HubSpot CRM API v3 (search, contacts, calls), per developers.hubspot.com/docs/api/
crm/search and /docs/api/crm/calls (read 2026-12), and the contacts merge
(/docs/api-reference/crm-contacts-v3: `POST /crm/v3/objects/contacts/merge` with exactly
`primaryObjectId` and `objectIdToMerge`, answering the merged contact; a merged-away id
reads as the contact it went into). Validates what the connector sends:
the private-app bearer token, filterGroups (at most 5 groups, known operators, string
values), known properties, call properties' types and the call->contact association."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from tests.connectors.fakes.base import FakeVendor

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
}
KNOWN = {
    "contacts": {
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
        "hs_searchable_calculated_phone_number",
    },
    "deals": {"dealname", "amount", "dealstage", "closedate", "associations.contact"},
    "tickets": {
        "subject",
        "hs_pipeline_stage",
        "createdate",
        "hs_ticket_priority",
        "hs_is_closed",
        "associations.contact",
    },
    "calls": {
        "hs_call_title",
        "hs_timestamp",
        "hs_call_body",
        "hs_call_duration",
        "hs_call_direction",
        "hs_call_status",
        "hs_call_disposition",
        "hs_call_from_number",
        "hs_call_to_number",
        "hs_call_recording_url",
    },
}


class FakeHubSpot(FakeVendor):
    def __init__(self) -> None:
        super().__init__()
        self.scopes_ok = True
        self.ids = itertools.count(501)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.deals: dict[str, list[dict[str, Any]]] = {}
        self.tickets: dict[str, list[dict[str, Any]]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.call_links: dict[str, str] = {}
        self.merged_into: dict[str, str] = {}  # merged-away id -> the contact it went into
        self.merge_requests: list[dict[str, Any]] = []
        # Properties the portal's admin created (Properties API), beside HubSpot's own.
        self.custom_properties: set[str] = {"bridge_tags"}

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/crm/v3/objects/{obj}/search", self._search)
        router.add_get("/crm/v3/objects/contacts/{id}", self._get_contact)
        router.add_post("/crm/v3/objects/contacts", self._create_contact)
        router.add_post("/crm/v3/objects/contacts/merge", self._merge_contacts)
        router.add_post("/crm/v3/objects/calls", self._create_call)
        router.add_patch("/crm/v3/objects/calls/{id}", self._patch_call)

    def _auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "category": "INVALID_AUTHENTICATION",
                },
                status=401,
            )
        if not self.scopes_ok:
            return web.json_response(
                {
                    "status": "error",
                    "message": "This app hasn't been granted all required scopes",
                    "category": "MISSING_SCOPES",
                },
                status=403,
            )
        return None

    def _match(self, obj: str, item: dict[str, Any], f: dict[str, Any]) -> bool:
        prop, op, value = f["propertyName"], f["operator"], f.get("value")
        if prop == "associations.contact":
            return item.get("_contact") == value
        have = item["properties"].get(prop)
        if op == "EQ":
            return have == value
        if op == "NEQ":
            return have != value
        if op == "GT":
            return have is not None and int(item["_modified_ms"]) > int(value)
        return False

    async def _search(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        obj = request.match_info["obj"]
        body = await request.json()
        groups = body.get("filterGroups", [])
        if not isinstance(groups, list) or len(groups) > 5:
            return self.violation("filterGroups: a list of at most 5")
        for group in groups:
            for f in group.get("filters", []):
                if f.get("operator") not in OPERATORS or not isinstance(f.get("value", ""), str):
                    return self.violation(f"bad filter {f!r}")
                if f.get("propertyName") not in KNOWN[obj]:
                    return web.json_response(
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "message": f"Property {f.get('propertyName')!r} does not exist",
                        },
                        status=400,
                    )
        for prop in body.get("properties", []):
            if prop not in KNOWN[obj]:
                return self.violation(f"unknown property {prop}")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 0 < limit <= 200:
            return self.violation("limit must be 1..200")
        pool = {
            "contacts": list(self.contacts.values()),
            "calls": list(self.calls.values()),
            "deals": [d for ds in self.deals.values() for d in ds],
            "tickets": [t for ts in self.tickets.values() for t in ts],
        }[obj]
        hits = [
            i
            for i in pool
            if not groups or any(all(self._match(obj, i, f) for f in g["filters"]) for g in groups)
        ]
        if body.get("sorts") and obj == "contacts":
            hits.sort(key=lambda i: int(i["_modified_ms"]))
        start = int(body.get("after", "0"))
        page = hits[start : start + limit]
        answer: dict[str, Any] = {"total": len(hits), "results": [self._public(i) for i in page]}
        if start + limit < len(hits):
            answer["paging"] = {"next": {"after": str(start + limit), "link": "?after="}}
        return web.json_response(answer)

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": item["id"],
            "properties": item["properties"],
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z",
            "archived": False,
        }

    async def _get_contact(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        cid = request.match_info["id"]
        while cid in self.merged_into:
            cid = self.merged_into[cid]
        item = self.contacts.get(cid)
        if item is None:
            return web.json_response(
                {"status": "error", "category": "OBJECT_NOT_FOUND"}, status=404
            )
        return web.json_response(self._public(item))

    async def _merge_contacts(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        body = await request.json()
        self.merge_requests.append(body)
        if not isinstance(body, dict) or set(body) != {"primaryObjectId", "objectIdToMerge"}:
            return self.violation(f"merge body {body!r}")
        primary, other = body["primaryObjectId"], body["objectIdToMerge"]
        if not isinstance(primary, str) or not isinstance(other, str):
            return self.violation("merge ids must be strings")
        if primary == other or other in self.merged_into:
            return web.json_response(
                {"status": "error", "category": "VALIDATION_ERROR", "message": "cannot merge"},
                status=400,
            )
        if primary not in self.contacts or other not in self.contacts:
            return web.json_response(
                {"status": "error", "category": "OBJECT_NOT_FOUND"}, status=404
            )
        gone = self.contacts.pop(other)
        kept = self.contacts[primary]
        for key, value in gone["properties"].items():
            kept["properties"].setdefault(key, value)
        self.merged_into[other] = primary
        return web.json_response(self._public(kept))

    async def _create_contact(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        props = (await request.json()).get("properties", {})
        for key, value in props.items():
            if key not in KNOWN["contacts"] | self.custom_properties:
                # HubSpot's answer for a property the portal does not have.
                return web.json_response(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f'Property values were not valid: [{{"name":"{key}",'
                        '"error":"PROPERTY_DOESNT_EXIST"}]',
                    },
                    status=400,
                )
            if not isinstance(value, str):
                return self.violation(f"{key} must be a string")
        cid = str(next(self.ids))
        self.contacts[cid] = {"id": cid, "properties": props, "_modified_ms": "0"}
        return web.json_response(self._public(self.contacts[cid]), status=201)

    def _check_call(self, props: dict[str, Any]) -> str:
        for key, value in props.items():
            if key not in KNOWN["calls"]:
                return f"unknown call property {key}"
            if not isinstance(value, str):
                return f"{key} must be a string"
        if not props.get("hs_timestamp"):
            return "hs_timestamp is required"
        if not props.get("hs_call_duration", "0").isdigit():
            return "hs_call_duration: milliseconds"
        if props.get("hs_call_direction") not in ("INBOUND", "OUTBOUND"):
            return "hs_call_direction"
        return ""

    async def _create_call(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        body = await request.json()
        if problem := self._check_call(body.get("properties", {})):
            return self.violation(problem)
        contact = ""
        for assoc in body.get("associations", []):
            types = assoc.get("types", [])
            if types != [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]:
                return self.violation(f"association types {types!r}")
            contact = assoc["to"]["id"]
        cid = str(next(self.ids))
        self.calls[cid] = {"id": cid, "properties": body["properties"], "_contact": contact}
        return web.json_response(self._public(self.calls[cid]), status=201)

    async def _patch_call(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        item = self.calls.get(request.match_info["id"])
        if item is None:
            return web.json_response({"category": "OBJECT_NOT_FOUND"}, status=404)
        props = (await request.json()).get("properties", {})
        if problem := self._check_call(props):
            return self.violation(problem)
        item["properties"].update(props)
        return web.json_response(self._public(item))
