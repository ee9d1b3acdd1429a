"""A fake Salesforce org: OAuth 2.0 client credentials, REST API v60.0 search (SOSL),
query (SOQL, paged with nextRecordsUrl) and sObjects Task/Contact, per the REST API
Developer Guide v60.0 and the Client Credentials Flow help page (read 2026-12). Tokens can
be expired by the test (answer 401 INVALID_SESSION_ID, as Salesforce does)."""

from __future__ import annotations

import itertools
import re
from typing import Any

from aiohttp import web

from tests.connectors.fakes.base import FakeVendor

CLIENT_ID = "3MVG9-client-id"
CLIENT_SECRET = "sf-client-secret-0123456789"
API = "/services/data/v60.0"
TASK_FIELDS = {
    "Subject",
    "TaskSubtype",
    "Status",
    "ActivityDate",
    "CallDurationInSeconds",
    "CallType",
    "CallDisposition",
    "CallObject",
    "Description",
    "WhoId",
}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


class FakeSalesforce(FakeVendor):
    token_paths = ("/services/oauth2/token",)

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.n = itertools.count(1)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.opportunities: list[dict[str, Any]] = []
        self.cases: list[dict[str, Any]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.page_size = 2
        self.contact_fields = {"FirstName", "LastName", "Phone", "Tags__c"}  # Tags__c: custom

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.n):015d}"[:18]

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/services/oauth2/token", self._token)
        router.add_get(f"{API}/search", self._search)
        router.add_get(f"{API}/query", self._query)
        router.add_get(f"{API}/query/{{cursor}}", self._more)
        router.add_post(f"{API}/sobjects/Task", self._create_task)
        router.add_patch(f"{API}/sobjects/Task/{{id}}", self._patch_task)
        router.add_post(f"{API}/sobjects/Contact", self._create_contact)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if request.content_type != "application/x-www-form-urlencoded":
            return self.violation("token request must be a form")
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response(
                {"error": "invalid_client", "error_description": "invalid client credentials"},
                status=400,
            )
        token = f"00Dxx!tok{next(self.n)}"
        self.tokens.add(token)
        return web.json_response(
            {
                "access_token": token,
                "instance_url": self.url,
                "id": f"{self.url}/id/00D/005",
                "token_type": "Bearer",
                "issued_at": "1764657603000",
                "signature": "sig",
            }
        )

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self.tokens:
            return web.json_response(
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                status=401,
            )
        return None

    async def _search(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        q = request.query.get("q", "")
        m = re.fullmatch(
            r"FIND \{((?:\\.|[^\\{}])*)\} IN PHONE FIELDS RETURNING Contact\((.*) LIMIT (\d+)\)", q
        )
        if not m:
            return self.violation(f"SOSL not understood: {q!r}")
        phone = _unescape(m.group(1))
        hits = [
            c for c in self.contacts.values() if phone in (c.get("Phone"), c.get("MobilePhone"))
        ]
        return web.json_response(
            {"searchRecords": [self._public(c) for c in hits[: int(m.group(3))]]}
        )

    def _public(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "attributes": {"type": "Contact", "url": f"{API}/sobjects/Contact/{item['Id']}"},
            **item,
        }

    def _paged(self, records: list[dict[str, Any]], start: int = 0) -> web.Response:
        page = records[start : start + self.page_size]
        done = start + self.page_size >= len(records)
        answer: dict[str, Any] = {"totalSize": len(records), "done": done, "records": page}
        if not done:
            self._pending = records
            answer["nextRecordsUrl"] = f"{API}/query/01gD0000002HU6KIAW-{start + self.page_size}"
        return web.json_response(answer)

    async def _more(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        start = int(request.match_info["cursor"].rsplit("-", 1)[1])
        return self._paged(self._pending, start)

    async def _query(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        q = request.query.get("q", "")
        if m := re.search(r"FROM Task WHERE CallObject = '((?:\\.|[^\\'])*)'", q):
            key = _unescape(m.group(1))
            return self._paged(
                [{"Id": i} for i, t in self.tasks.items() if t.get("CallObject") == key]
            )
        if m := re.search(r"FROM Contact WHERE Id = '([A-Za-z0-9]{15,18})'$", q):
            c = self.contacts.get(m.group(1))
            return self._paged([self._public(c)] if c else [])
        if m := re.search(
            r"FROM Contact WHERE LastModifiedDate > (\S+) ORDER BY LastModifiedDate ASC", q
        ):
            hits = sorted(
                (
                    c
                    for c in self.contacts.values()
                    if c["LastModifiedDate"] > m.group(1).replace("Z", ".000+0000")
                ),
                key=lambda c: c["LastModifiedDate"],
            )
            return self._paged([self._public(c) for c in hits])
        if m := re.search(r"FROM Opportunity WHERE AccountId = '([A-Za-z0-9]+)'", q):
            return self._paged([o for o in self.opportunities if o["AccountId"] == m.group(1)])
        if m := re.search(r"FROM Case WHERE ContactId = '([A-Za-z0-9]+)' AND IsClosed = false", q):
            return self._paged(
                [c for c in self.cases if c["ContactId"] == m.group(1) and not c["IsClosed"]]
            )
        return web.json_response(
            [{"message": f"unexpected SOQL {q[:80]}", "errorCode": "MALFORMED_QUERY"}], status=400
        )

    def _check_task(self, body: dict[str, Any]) -> web.Response | None:
        for key in body:
            if key not in TASK_FIELDS:
                return web.json_response(
                    [
                        {
                            "message": f"No such column '{key}' on sobject of type Task",
                            "errorCode": "INVALID_FIELD",
                            "fields": [],
                        }
                    ],
                    status=400,
                )
        if not isinstance(body.get("CallDurationInSeconds", 0), int):
            return self.violation("CallDurationInSeconds must be an integer")
        if body.get("CallType") not in (None, "Inbound", "Outbound", "Internal"):
            return self.violation("CallType picklist")
        return None

    async def _create_task(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        body = await request.json()
        if (bad := self._check_task(body)) is not None:
            return bad
        tid = self.new_id("00T")
        self.tasks[tid] = body
        return web.json_response({"id": tid, "success": True, "errors": []}, status=201)

    async def _patch_task(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        body = await request.json()
        if (bad := self._check_task(body)) is not None:
            return bad
        self.tasks[request.match_info["id"]].update(body)
        return web.Response(status=204)

    async def _create_contact(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        body = await request.json()
        for key in body:
            if key not in self.contact_fields:
                return web.json_response(
                    [
                        {
                            "message": f"No such column '{key}' on sobject of type Contact",
                            "errorCode": "INVALID_FIELD",
                        }
                    ],
                    status=400,
                )
        if not body.get("LastName"):
            return web.json_response(
                [
                    {
                        "message": "Required fields are missing: [LastName]",
                        "errorCode": "REQUIRED_FIELD_MISSING",
                    }
                ],
                status=400,
            )
        cid = self.new_id("003")
        self.contacts[cid] = {
            "Id": cid,
            "Name": f"{body.get('FirstName', '')} {body['LastName']}".strip(),
            "Phone": body.get("Phone"),
            "LastModifiedDate": "2026-12-02T00:00:00.000+0000",
            **({"Tags__c": body["Tags__c"]} if "Tags__c" in body else {}),
        }
        return web.json_response({"id": cid, "success": True, "errors": []}, status=201)
