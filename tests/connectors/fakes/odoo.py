"""A fake Odoo server's `/jsonrpc` endpoint (common.authenticate, object.execute_kw), per
Odoo 17.0's External API reference (read 2026-12). Errors come back as JSON-RPC errors with
HTTP 200 and `data.name` (odoo.exceptions.AccessDenied, builtins.KeyError for a model the
database does not have, e.g. helpdesk.ticket outside Enterprise)."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from tests.connectors.fakes.base import FakeVendor

DB = "acme"
LOGIN = "bridge@acme.example"
API_KEY = "0123456789abcdef0123456789abcdef01234567"
UID = 7


def _error(rid: Any, name: str, message: str) -> web.Response:
    return web.json_response(
        {
            "jsonrpc": "2.0",
            "id": rid,
            "error": {
                "code": 200,
                "message": "Odoo Server Error",
                "data": {
                    "name": name,
                    "debug": "Traceback ...",
                    "message": message,
                    "arguments": [message],
                },
            },
        }
    )


class FakeOdoo(FakeVendor):
    def __init__(self) -> None:
        super().__init__()
        self.n = itertools.count(100)
        self.partners: dict[int, dict[str, Any]] = {}
        self.categories = {1: "VIP", 2: "Wholesale"}
        self.orders: list[dict[str, Any]] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self.logins = 0

    def wrong_type(self) -> Any:
        return {"jsonrpc": "2.0", "id": 1, "result": "not a list"}

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/jsonrpc", self._jsonrpc)

    async def _jsonrpc(self, request: web.Request) -> web.Response:
        body = await request.json()
        rid = body.get("id")
        if body.get("jsonrpc") != "2.0" or body.get("method") != "call" or not isinstance(rid, int):
            return self.violation(f"not a JSON-RPC 2.0 call: {body!r}")
        params = body.get("params", {})
        service, method, args = params.get("service"), params.get("method"), params.get("args")
        if service == "common" and method == "authenticate":
            self.logins += 1
            if len(args) != 4 or not isinstance(args[3], dict):
                return self.violation("authenticate(db, login, key, {})")
            ok = args[:3] == [DB, LOGIN, API_KEY]
            return web.json_response({"jsonrpc": "2.0", "id": rid, "result": UID if ok else False})
        if service != "object" or method != "execute_kw" or len(args) != 7:
            return self.violation(f"unexpected call {service}.{method}")
        db, uid, key, model, meth, margs, kwargs = args
        if [db, uid, key] != [DB, UID, API_KEY]:
            return _error(rid, "odoo.exceptions.AccessDenied", "Access Denied")
        if not isinstance(margs, list) or not isinstance(kwargs, dict):
            return self.violation("execute_kw args must be a list, kwargs an object")
        try:
            result = self._execute(model, meth, margs, kwargs)
        except KeyError as exc:
            return _error(rid, "builtins.KeyError", str(exc))
        except ValueError as exc:
            return self.violation(str(exc))
        return web.json_response({"jsonrpc": "2.0", "id": rid, "result": result})

    def _fields(self, item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        return {"id": item["id"], **{f: item.get(f, False) for f in fields if f != "id"}}

    def _match(self, item: dict[str, Any], domain: list[Any]) -> bool:
        if domain and domain[0] == "|":
            return any(self._match(item, [leaf]) for leaf in domain[1:])
        for field, op, value in domain:
            have = item.get(field)
            if op == "=" and have != value:
                return False
            if op == ">" and not (have and have > value):
                return False
            if op == "ilike" and str(value).lower() not in str(have).lower():
                return False
        return True

    def _execute(self, model: str, meth: str, args: list[Any], kw: dict[str, Any]) -> Any:
        if model == "res.partner":
            if meth == "search_read":
                hits = [p for p in self.partners.values() if self._match(p, args[0])]
                if kw.get("order") == "write_date asc":
                    hits.sort(key=lambda p: p["write_date"])
                return [
                    self._fields(p, kw.get("fields", [])) for p in hits[: kw.get("limit") or None]
                ]
            if meth == "read":
                return [
                    self._fields(self.partners[i], kw["fields"])
                    for i in args[0]
                    if i in self.partners
                ]
            if meth == "create":
                links = args[0].get("category_id", [])
                if links:  # many2many commands: only (6, 0, ids) is expected here
                    if not (
                        isinstance(links, list)
                        and len(links) == 1
                        and links[0][:2] == [6, 0]
                        and all(i in self.categories for i in links[0][2])
                    ):
                        raise ValueError(f"category_id {links!r}")
                    args[0] = {**args[0], "category_id": list(links[0][2])}
                pid = next(self.n)
                self.partners[pid] = {
                    "id": pid,
                    "category_id": [],
                    "user_id": False,
                    "write_date": "2026-12-02 00:00:00",
                    **args[0],
                }
                return pid
            if meth == "message_post":
                if kw.get("message_type") != "comment" or kw.get("subtype_xmlid") != "mail.mt_note":
                    raise ValueError("message_post kwargs")
                mid = next(self.n)
                self.messages[mid] = {
                    "id": mid,
                    "model": "res.partner",
                    "res_id": args[0][0],
                    "body": kw["body"],
                }
                return mid
        if model == "res.partner.category" and meth == "read":
            return [{"id": i, "name": self.categories[i]} for i in args[0] if i in self.categories]
        if model == "res.partner.category" and meth == "search_read":
            names = [v for f, op, v in args[0] if f == "name" and op == "in"]
            if len(names) != 1 or not isinstance(names[0], list):
                raise ValueError("category search by name in [...]")
            return [{"id": i, "name": n} for i, n in self.categories.items() if n in names[0]]
        if model == "res.partner.category" and meth == "create":
            if not isinstance(args[0].get("name"), str) or not args[0]["name"]:
                raise ValueError("a category needs a name")
            cid = next(self.n)
            self.categories[cid] = args[0]["name"]
            return cid
        if model == "mail.message":
            if meth == "search":
                return [m["id"] for m in self.messages.values() if self._match(m, args[0])][
                    : kw.get("limit")
                ]
            if meth == "write":
                for i in args[0]:
                    self.messages[i].update(args[1])
                return True
        if model == "sale.order" and meth == "search_read":
            return [o for o in self.orders if o["partner_id"][0] == args[0][0][2]][
                : kw.get("limit")
            ]
        raise KeyError(model)
