"""A fake Zoho CRM (REST API v2) and its accounts server, per zoho.com/crm/developer/docs/
api/v2/ (search records, get related records, insert/update records, OAuth refresh; read
2026-12): `Zoho-oauthtoken` header, 204 for no records, per-record write answers, and the
token endpoint's `{"error": "invalid_code"}` with HTTP 200 for a bad refresh token."""

from __future__ import annotations

import itertools
import re
from typing import Any

from aiohttp import web

from tests.connectors.fakes.base import FakeVendor

CLIENT_ID = "1000.ZOHOCLIENTID"
CLIENT_SECRET = "zoho-client-secret-abcdef"
REFRESH_TOKEN = "1000.refresh.token.value"
CALL_FIELDS = {
    "id",
    "Subject",
    "Call_Type",
    "Call_Start_Time",
    "Call_Duration",
    "Call_Result",
    "Description",
    "Who_Id",
    "$se_module",
}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


class FakeZoho(FakeVendor):
    token_paths = ("/oauth/v2/token",)

    def __init__(self) -> None:
        super().__init__()
        self.n = itertools.count(4150868000000224001)
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.contacts: dict[str, dict[str, Any]] = {}
        self.deals: dict[str, list[dict[str, Any]]] = {}
        self.cases: dict[str, list[dict[str, Any]]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.per_page = 1
        self.refuse_tags = False
        self.merge_requests: list[tuple[str, list[str]]] = []

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/oauth/v2/token", self._token)
        router.add_get("/crm/v2/Contacts/search", self._search_contacts)
        router.add_get("/crm/v2/Contacts", self._list_contacts)
        router.add_post("/crm/v2/Contacts", self._insert_contacts)
        router.add_get("/crm/v2/Contacts/{id}", self._get_contact)
        router.add_get("/crm/v2/Contacts/{id}/{related}", self._related)
        router.add_post("/crm/v2/Contacts/{id}/actions/add_tags", self._add_tags)
        router.add_post("/crm/v6/Contacts/{id}/actions/merge", self._merge)
        router.add_get("/crm/v2/Calls/search", self._search_calls)
        router.add_post("/crm/v2/Calls", self._insert_calls)
        router.add_put("/crm/v2/Calls", self._update_calls)

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "refresh_token":
            return self.violation("grant_type must be refresh_token")
        if (form.get("client_id"), form.get("client_secret"), form.get("refresh_token")) != (
            CLIENT_ID,
            CLIENT_SECRET,
            REFRESH_TOKEN,
        ):
            return web.json_response({"error": "invalid_code"})
        token = f"1000.access.{next(self.n)}"
        self.tokens.add(token)
        return web.json_response(
            {
                "access_token": token,
                "api_domain": self.url,
                "token_type": "Bearer",
                "expires_in": 3600,
            }
        )

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Zoho-oauthtoken ") or header[16:] not in self.tokens:
            return web.json_response(
                {
                    "code": "INVALID_TOKEN",
                    "details": {},
                    "message": "invalid oauth token",
                    "status": "error",
                },
                status=401,
            )
        return None

    @staticmethod
    def _page(items: list[dict[str, Any]], page: int = 1, per_page: int = 200) -> web.Response:
        if not items:
            return web.Response(status=204)
        chunk = items[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(items)
        return web.json_response(
            {
                "data": chunk,
                "info": {
                    "per_page": per_page,
                    "count": len(chunk),
                    "page": page,
                    "more_records": more,
                },
            }
        )

    async def _search_contacts(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        phone = request.query.get("phone")
        if not phone:
            return self.violation("search needs phone, email, word or criteria")
        return self._page(
            [c for c in self.contacts.values() if phone in (c.get("Phone"), c.get("Mobile"))]
        )

    async def _list_contacts(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        since = request.headers.get("If-Modified-Since", "")
        if request.query.get("sort_by") != "Modified_Time":
            return self.violation("sort_by")
        hits = sorted(
            (c for c in self.contacts.values() if c["Modified_Time"] > since),
            key=lambda c: c["Modified_Time"],
        )
        if not hits:
            return web.Response(status=304)
        return self._page(hits, int(request.query.get("page", "1")), self.per_page)

    async def _get_contact(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        item = self.contacts.get(request.match_info["id"])
        return self._page([item] if item else [])

    async def _related(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        rel = {"Deals": self.deals, "Cases": self.cases}.get(request.match_info["related"])
        if rel is None:
            return web.json_response({"code": "INVALID_DATA", "status": "error"}, status=400)
        return self._page(rel.get(request.match_info["id"], []))

    async def _add_tags(self, request: web.Request) -> web.Response:
        """Add Tags to Records (v2): `tag_names` comma-separated; missing tags are created."""
        if (refused := self._auth(request)) is not None:
            return refused
        record = self.contacts.get(request.match_info["id"])
        names = [n for n in request.query.get("tag_names", "").split(",") if n]
        if not names:
            return self.violation("add_tags needs tag_names")
        if record is None:
            return web.json_response(
                {"data": [{"code": "INVALID_DATA", "details": {"api_name": "id"}}]}, status=400
            )
        if self.refuse_tags:
            return web.json_response(
                {"data": [{"code": "INVALID_DATA", "details": {"api_name": "tag_names"}}]},
                status=400,
            )
        tags = record.setdefault("Tag", [])
        for name in names:
            if name not in {t["name"] for t in tags}:
                tags.append({"name": name, "id": str(next(self.n))})
        return web.json_response(
            {
                "data": [
                    {
                        "code": "SUCCESS",
                        "details": {"id": record["id"], "tags": [t["name"] for t in tags]},
                        "message": "tags updated successfully",
                        "status": "success",
                    }
                ]
            }
        )

    async def _merge(self, request: web.Request) -> web.Response:
        """Merge Records (v6): one master, up to two children, each an existing record."""
        if (refused := self._auth(request)) is not None:
            return refused
        master = request.match_info["id"]
        body = await request.json()
        merge = body.get("merge") if isinstance(body, dict) else None
        if not isinstance(merge, list) or len(merge) != 1 or not isinstance(merge[0], dict):
            return self.violation("merge: a list of one object")
        data = merge[0].get("data")
        if not isinstance(data, list) or not 1 <= len(data) <= 2:
            return self.violation("merge[0].data: one or two children")
        children = [d.get("id") if isinstance(d, dict) else None for d in data]
        if master not in self.contacts or any(
            c not in self.contacts or c == master for c in children
        ):
            return web.json_response(
                {
                    "code": "INVALID_DATA",
                    "details": {"api_name": "id"},
                    "message": "the id given seems to be invalid",
                    "status": "error",
                },
                status=400,
            )
        kept = self.contacts[master]
        for child in children:
            for key, value in self.contacts.pop(child).items():
                kept.setdefault(key, value)
        self.merge_requests.append((master, [str(c) for c in children]))
        return web.json_response(
            {
                "merge": [
                    {
                        "code": "SUCCESS",
                        "details": {"job_id": str(next(self.n))},
                        "message": "records merged successfully",
                        "status": "success",
                    }
                ]
            }
        )

    async def _search_calls(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        m = re.fullmatch(
            r"\(Subject:equals:((?:\\.|[^\\()])*)\)", request.query.get("criteria", "")
        )
        if not m:
            return self.violation(f"criteria {request.query.get('criteria')!r}")
        subject = _unescape(m.group(1))
        return self._page([c for c in self.calls.values() if c["Subject"] == subject])

    def _check(self, item: dict[str, Any]) -> dict[str, Any] | None:
        for key in item:
            if key not in CALL_FIELDS:
                return {
                    "code": "INVALID_DATA",
                    "details": {"api_name": key},
                    "message": "invalid data",
                    "status": "error",
                }
        if item.get("Call_Type") not in ("Inbound", "Outbound"):
            return {
                "code": "INVALID_DATA",
                "details": {"api_name": "Call_Type"},
                "message": "invalid data",
                "status": "error",
            }
        if not re.fullmatch(r"\d{2,}:\d{2}", item.get("Call_Duration", "")):
            return {
                "code": "INVALID_DATA",
                "details": {"api_name": "Call_Duration"},
                "message": "invalid data",
                "status": "error",
            }
        return None

    async def _insert_calls(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        items = (await request.json())["data"]
        if (bad := self._check(items[0])) is not None:
            return web.json_response({"data": [bad]}, status=400)
        cid = str(next(self.n))
        self.calls[cid] = {"id": cid, **items[0]}
        return web.json_response(
            {
                "data": [
                    {
                        "code": "SUCCESS",
                        "details": {"id": cid},
                        "message": "record added",
                        "status": "success",
                    }
                ]
            },
            status=201,
        )

    async def _update_calls(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        items = (await request.json())["data"]
        if (bad := self._check(items[0])) is not None or items[0].get("id") not in self.calls:
            return web.json_response(
                {
                    "data": [
                        bad
                        or {
                            "code": "INVALID_DATA",
                            "details": {"api_name": "id"},
                            "status": "error",
                        }
                    ]
                },
                status=400,
            )
        self.calls[items[0]["id"]].update(items[0])
        return web.json_response(
            {
                "data": [
                    {
                        "code": "SUCCESS",
                        "details": {"id": items[0]["id"]},
                        "message": "record updated",
                        "status": "success",
                    }
                ]
            }
        )

    async def _insert_contacts(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        item = (await request.json())["data"][0]
        if not item.get("Last_Name"):
            return web.json_response(
                {
                    "data": [
                        {
                            "code": "MANDATORY_NOT_FOUND",
                            "details": {"api_name": "Last_Name"},
                            "status": "error",
                        }
                    ]
                },
                status=400,
            )
        cid = str(next(self.n))
        self.contacts[cid] = {
            "id": cid,
            "Full_Name": f"{item.get('First_Name', '')} {item['Last_Name']}".strip(),
            "Phone": item.get("Phone"),
            "Modified_Time": "2026-12-02T00:00:00+00:00",
        }
        return web.json_response(
            {
                "data": [
                    {
                        "code": "SUCCESS",
                        "details": {"id": cid},
                        "message": "record added",
                        "status": "success",
                    }
                ]
            },
            status=201,
        )
