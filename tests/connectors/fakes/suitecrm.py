"""A fake SuiteCRM 8 V8 JSON:API under /legacy/Api, per docs.suitecrm.com/developer/api/
developer-setup-guide/json-api/ and the V8 swagger (read 2026-12): client-credentials
tokens, `filter[...]`/`fields[...]`/`page[...]` parameters, relationships, JSON:API bodies in
`application/vnd.api+json`, and JSON:API errors."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tests.connectors.fakes.base import FakeVendor

CLIENT_ID = "6f0a1c2e-suite-client"
CLIENT_SECRET = "suite-client-secret-xyz"
API = "/legacy/Api"
# Contacts fields a create may set; tags_c is a Studio-made custom field (the `_c` suffix).
CONTACT_ATTRS = {
    "first_name",
    "last_name",
    "phone_work",
    "phone_mobile",
    "phone_home",
    "email1",
    "tags_c",
}
CALL_ATTRS = {
    "name",
    "direction",
    "status",
    "date_start",
    "duration_hours",
    "duration_minutes",
    "description",
    "parent_type",
    "parent_id",
}


def _error(status: int, title: str) -> web.Response:
    return web.json_response(
        {"errors": {"status": status, "title": title, "detail": title}},
        status=status,
        content_type="application/vnd.api+json",
    )


class FakeSuiteCrm(FakeVendor):
    token_paths = (f"{API}/access_token",)

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.records: dict[str, dict[str, dict[str, Any]]] = {
            "Contacts": {},
            "Calls": {},
            "Opportunities": {},
            "Cases": {},
        }
        self.links: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.page_size_cap = 100

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"{API}/access_token", self._token)
        router.add_get(f"{API}/V8/module/{{module}}", self._list)
        router.add_get(f"{API}/V8/module/{{module}}/{{id}}", self._get)
        router.add_get(
            f"{API}/V8/module/{{module}}/{{id}}/relationships/{{link}}", self._relationship
        )
        router.add_post(f"{API}/V8/module", self._create)
        router.add_patch(f"{API}/V8/module", self._update)

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response(
                {"error": "invalid_client", "message": "Client authentication failed"}, status=401
            )
        token = f"eyJ0eXAi.{uuid.uuid4().hex}"
        self.tokens.add(token)
        return web.json_response(
            {"token_type": "Bearer", "expires_in": 3600, "access_token": token}
        )

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self.tokens:
            return _error(401, "Access denied")
        return None

    def _public(self, module: str, rid: str, fields: str | None) -> dict[str, Any]:
        attrs = self.records[module][rid]
        if fields:
            attrs = {k: v for k, v in attrs.items() if k in fields.split(",")}
        return {"type": module, "id": rid, "attributes": attrs, "relationships": {}}

    async def _list(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        module = request.match_info["module"]
        if module not in self.records:
            return _error(400, f"Module {module} does not exist")
        q = request.query
        op = q.get("filter[operator]", "and")
        conds = []
        for key, value in q.items():
            if key.startswith("filter[") and key != "filter[operator]":
                field, _, test = key[7:].partition("][")
                conds.append((field, test.rstrip("]"), value))

        def ok(attrs: dict[str, Any]) -> bool:
            results = []
            for field, test, value in conds:
                have = attrs.get(field)
                results.append(
                    have == value
                    if test == "eq"
                    else (have is not None and have > value)
                    if test == "gt"
                    else False
                )
            return (any(results) if op == "or" else all(results)) if results else True

        for _field, test, _ in conds:
            if test not in ("eq", "gt"):
                return self.violation(f"filter operator {test}")
        hits = [rid for rid, attrs in self.records[module].items() if ok(attrs)]
        if q.get("sort") == "date_modified":
            hits.sort(key=lambda r: self.records[module][r]["date_modified"])
        size = int(q.get("page[size]", "20"))
        number = int(q.get("page[number]", "1"))
        size = min(size, self.page_size_cap)
        page = hits[(number - 1) * size : number * size]
        pages = max(1, -(-len(hits) // size))
        return web.json_response(
            {
                "meta": {"total-pages": pages},
                "data": [self._public(module, r, q.get(f"fields[{module}]")) for r in page],
            },
            content_type="application/vnd.api+json",
        )

    async def _get(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        module, rid = request.match_info["module"], request.match_info["id"]
        if rid not in self.records.get(module, {}):
            return _error(404, "Record not found")
        return web.json_response(
            {"data": self._public(module, rid, request.query.get(f"fields[{module}]"))},
            content_type="application/vnd.api+json",
        )

    async def _relationship(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        refs = self.links.get((request.match_info["id"], request.match_info["link"]), [])
        return web.json_response(
            {"data": [{"type": t, "id": i} for t, i in refs]},
            content_type="application/vnd.api+json",
        )

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.content_type != "application/vnd.api+json":
            return self.violation(f"content type {request.content_type}")
        body = await request.json()
        data = body.get("data")
        if not isinstance(data, dict) or data.get("type") not in self.records:
            return self.violation("data.type")
        if data["type"] == "Contacts":
            for key in data.get("attributes", {}):
                if key not in CONTACT_ATTRS:
                    return _error(400, f"Property {key} in Contacts module is invalid")
        if data["type"] == "Calls":
            for key, value in data.get("attributes", {}).items():
                if key not in CALL_ATTRS:
                    return _error(400, f"Property {key} in Calls module is invalid")
                if key.startswith("duration_") and not isinstance(value, int):
                    return self.violation(f"{key} must be an integer")
            if data["attributes"].get("direction") not in ("Inbound", "Outbound"):
                return self.violation("direction")
        return data

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        data = await self._body(request)
        if isinstance(data, web.Response):
            return data
        rid = str(uuid.uuid4())
        self.records[data["type"]][rid] = {
            "date_modified": "2026-12-02 00:00:00",
            **data.get("attributes", {}),
        }
        return web.json_response(
            {"data": self._public(data["type"], rid, None)},
            status=201,
            content_type="application/vnd.api+json",
        )

    async def _update(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        data = await self._body(request)
        if isinstance(data, web.Response):
            return data
        if data.get("id") not in self.records[data["type"]]:
            return _error(404, "Record not found")
        self.records[data["type"]][data["id"]].update(data.get("attributes", {}))
        return web.json_response(
            {"data": self._public(data["type"], data["id"], None)},
            content_type="application/vnd.api+json",
        )
