"""Odoo: JSON-RPC with an API key; `res.partner` by phone; the call on the partner's chatter.

Follows Odoo's External API reference (odoo.com/documentation/17.0/developer/reference/
external_api.html, read 2026-12) over its JSON-RPC transport: `POST /jsonrpc` with
`{"jsonrpc": "2.0", "method": "call", "params": {"service", "method", "args"}, "id"}`;
`common.authenticate(db, login, api_key, {})` -> the user id (false when refused);
`object.execute_kw(db, uid, api_key, model, method, args, kwargs)`. A failure is
`{"error": {"code", "message", "data": {"name": "odoo.exceptions.AccessDenied", ...}}}`,
always with HTTP 200.

The call is a note posted with `message_post` on the partner; its body carries the call's
marker, so a repeated delivery finds that `mail.message` and rewrites its body instead.
Phones are matched as stored: keep them in E.164 in Odoo (see the README's checklist).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from bridge.config import CrmConfig
from bridge.connectors.prebuilt.base import MAX_ROWS, PrebuiltConnector
from bridge.connectors.prebuilt.calls import CallSummary
from bridge.connectors.prebuilt.credentials import Credentials
from bridge.connectors.prebuilt.fields import as_list, as_map, row, text
from bridge.errors import CrmError, CrmRefused
from bridge.models import Customer, CustomerCard

__all__ = ["OdooConnector", "note_body"]

PARTNER_FIELDS = ["id", "name", "email", "phone", "mobile", "category_id", "user_id", "write_date"]
MAX_CHANGES = 2000


def note_body(call: CallSummary) -> str:
    """The chatter note as HTML (Odoo stores message bodies as HTML): text escaped."""
    return "<br>".join(html.escape(line) for line in call.description().split("\n"))


class OdooFault(CrmError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"Odoo error {name}")
        self.name = name
        self.detail = message


class OdooConnector(PrebuiltConnector):
    vendor = "odoo"
    no_merge_api = (
        "offers no documented external API to merge partners"
        " (only the deduplication wizard in its UI)"
    )
    label = "Odoo"
    needs = ("username", "token")
    preset: ClassVar[dict[str, str]] = {
        "id": "res.partner id",
        "name": "name",
        "tags": "category_id (res.partner.category names; on create, missing ones are made)",
        "owner": "user_id (salesperson)",
        "attributes": "email, phone, mobile",
        "orders": "sale.order: name, amount_total, state, date_order (when Sales is installed)",
        "history": "open helpdesk.ticket: name, create_date (when Helpdesk is installed)",
        "call record": "a note (message_post, mail.mt_note) on the partner's chatter",
    }

    def __init__(self, config: CrmConfig, credentials: Credentials) -> None:
        super().__init__(config, credentials)
        self._uid: int | None = None
        self._ids = itertools.count(1)

    async def _rpc(self, service: str, method: str, args: list[Any]) -> Any:
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": next(self._ids),
        }
        answer = await self.http.request("POST", self.base_url + "/jsonrpc", json_body=body)
        if answer.status != 200:
            raise self._unexpected("JSON-RPC", answer)
        payload = as_map(answer.payload, "Odoo JSON-RPC answer")
        if "error" in payload:
            data = as_map(as_map(payload.get("error")).get("data"))
            name = text(data.get("name"), 120)
            if name.endswith(("AccessDenied", "AccessError")):
                self._uid = None
                kind = "credentials" if name.endswith("AccessDenied") else "scope"
                raise CrmRefused(kind, f"Odoo refused: {name}")
            raise OdooFault(name, text(data.get("message"), 300))
        return payload.get("result")

    async def _login(self) -> int:
        if self._uid is None:
            db = self.config.database
            uid = await self._rpc(
                "common",
                "authenticate",
                [db, self.credentials.get("username"), self.credentials.get("token"), {}],
            )
            if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
                raise CrmRefused("credentials", "Odoo refused the login and API key")
            self._uid = uid
        return self._uid

    async def _kw(
        self, model: str, method: str, args: list[Any], kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        uid = await self._login()
        try:
            return await self._rpc(
                "object",
                "execute_kw",
                [
                    self.config.database,
                    uid,
                    self.credentials.get("token"),
                    model,
                    method,
                    args,
                    dict(kwargs or {}),
                ],
            )
        except CrmRefused as exc:
            if exc.kind == "credentials":
                self._uid = None
            raise

    async def _optional(
        self, model: str, domain: list[Any], fields: list[str], order: str
    ) -> list[Any]:
        """Rows of a model an installation may lack (sale, helpdesk): none when it does."""
        try:
            rows = await self._kw(
                model,
                "search_read",
                [domain],
                {"fields": fields, "limit": MAX_ROWS, "order": order},
            )
        except OdooFault:
            return []
        return as_list(rows)

    async def _category_names(self, category_ids: list[int]) -> dict[int, str]:
        if not category_ids:
            return {}
        cats = as_list(
            await self._kw(
                "res.partner.category", "read", [category_ids[:500]], {"fields": ["name"]}
            )
        )
        names: dict[int, str] = {}
        for cat in cats:
            cid, cname = as_map(cat).get("id"), text(as_map(cat).get("name"), 64)
            if isinstance(cid, int) and not isinstance(cid, bool) and cname:
                names[cid] = cname
        return names

    @staticmethod
    def _category_ids_of(item: Mapping[str, Any]) -> list[int]:
        return [
            c
            for c in as_list(item.get("category_id"))
            if isinstance(c, int) and not isinstance(c, bool)
        ][:50]

    async def _customer(self, item: Any, *, names: Mapping[int, str] | None = None) -> Customer:
        """`names`: category names read beforehand (the feed reads them once per poll)."""
        item = as_map(item, "an Odoo partner")
        pid = item.get("id")
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise CrmError("Odoo partner without id")
        category_ids = self._category_ids_of(item)
        if names is None:
            names = await self._category_names(category_ids)
        tags = tuple(names[c] for c in category_ids if c in names)
        user = as_list(item.get("user_id"))
        attrs = {
            k: text(item.get(k))
            for k in ("email", "phone", "mobile")
            if isinstance(item.get(k), str)
        }
        if link := self.customer_link(str(pid)):
            attrs["crm_url"] = link
        return Customer(
            id=str(pid),
            name=text(item.get("name")) or str(pid),
            tags=tags,
            attributes=attrs,
            owner=text(user[1], 64) if len(user) == 2 else None,
        )

    async def _lookup(self, e164: str) -> Customer | None:
        domain = ["|", ["phone", "=", e164], ["mobile", "=", e164]]
        found = as_list(
            await self._kw(
                "res.partner", "search_read", [domain], {"fields": PARTNER_FIELDS, "limit": 1}
            ),
            "search_read result",
        )
        return await self._customer(found[0]) if found else None

    def _partner_id(self, value: str) -> int:
        if not value.isdigit() or len(value) > 12:
            raise CrmError("not an Odoo partner id")
        return int(value)

    async def _card(self, customer_id: str) -> CustomerCard | None:
        pid = self._partner_id(customer_id)
        found = as_list(await self._kw("res.partner", "read", [[pid]], {"fields": PARTNER_FIELDS}))
        if not found:
            return None
        customer = await self._customer(found[0])
        orders = await self._optional(
            "sale.order",
            [["partner_id", "=", pid]],
            ["name", "amount_total", "state", "date_order"],
            "date_order desc",
        )
        tickets = await self._optional(
            "helpdesk.ticket",
            [["partner_id", "=", pid], ["stage_id.fold", "=", False]],
            ["name", "stage_id", "create_date"],
            "create_date desc",
        )
        return CustomerCard(
            id=customer.id,
            name=customer.name,
            tags=customer.tags,
            owner=customer.owner,
            attributes=customer.attributes,
            orders=tuple(
                row(
                    o,
                    {
                        "reference": "name",
                        "amount": "amount_total",
                        "status": "state",
                        "ordered_at": "date_order",
                    },
                )
                for o in orders
            ),
            history=tuple(row(t, {"subject": "name", "at": "create_date"}) for t in tickets),
        )

    def preview(self, record: Mapping[str, Any], contact_id: str) -> Any:
        call = CallSummary.of(record)
        return {
            "model": "res.partner",
            "method": "message_post",
            "ids": [contact_id] if contact_id else [],
            "kwargs": {
                "body": note_body(call),
                "message_type": "comment",
                "subtype_xmlid": "mail.mt_note",
            },
        }

    async def _write_call(self, call: CallSummary, contact_id: str) -> None:
        if not contact_id:
            return  # Odoo logs calls on a partner's chatter; an unknown caller has none
        pid = self._partner_id(contact_id)
        body = note_body(call)
        domain = [
            ["model", "=", "res.partner"],
            ["res_id", "=", pid],
            ["body", "ilike", html.escape(call.title)],
        ]
        found = as_list(await self._kw("mail.message", "search", [domain], {"limit": 1}))
        if found and isinstance(found[0], int):
            await self._kw("mail.message", "write", [[found[0]], {"body": body}])
            return
        await self._kw(
            "res.partner",
            "message_post",
            [[pid]],
            {"body": body, "message_type": "comment", "subtype_xmlid": "mail.mt_note"},
        )

    async def _category_ids(self, tags: Sequence[str]) -> list[int]:
        """The `res.partner.category` ids of these names, creating the missing ones."""
        found = as_list(
            await self._kw(
                "res.partner.category",
                "search_read",
                [[["name", "in", list(tags)]]],
                {"fields": ["name"]},
            ),
            "category search",
        )
        ids: dict[str, int] = {}
        for item in found:
            cid, cname = as_map(item).get("id"), text(as_map(item).get("name"), 64)
            if isinstance(cid, int) and not isinstance(cid, bool):
                ids.setdefault(cname, cid)
        for tag in tags:
            if tag not in ids:
                new = await self._kw("res.partner.category", "create", [{"name": tag}])
                if isinstance(new, list) and new:
                    new = new[0]
                if not isinstance(new, int) or isinstance(new, bool):
                    raise CrmError("Odoo category create answered no id")
                ids[tag] = new
        return [ids[t] for t in tags]

    async def _create(self, name: str, e164: str, tags: Sequence[str]) -> Customer:
        values: dict[str, Any] = {"name": name, "phone": e164}
        if tags:  # many2many command 6: replace the links with exactly these ids
            values["category_id"] = [[6, 0, await self._category_ids(tags)]]
        new_id = await self._kw("res.partner", "create", [values])
        if isinstance(new_id, list) and new_id:
            new_id = new_id[0]
        if not isinstance(new_id, int) or isinstance(new_id, bool):
            raise CrmError("Odoo create answered no id")
        return Customer(id=str(new_id), name=name, tags=tuple(tags), attributes={"phone": e164})

    async def _changes(self, since: datetime) -> tuple[list[Customer], datetime]:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")  # Odoo datetimes: UTC
        rows = as_list(
            await self._kw(
                "res.partner",
                "search_read",
                [[["write_date", ">", stamp]]],
                {"fields": PARTNER_FIELDS, "order": "write_date asc", "limit": MAX_CHANGES},
            ),
            "search_read result",
        )
        cursor = since
        changed = []
        wanted = {c for item in rows for c in self._category_ids_of(as_map(item))}
        names = await self._category_names(sorted(wanted))
        for item in rows:
            changed.append(await self._customer(item, names=names))
            try:
                written = datetime.strptime(
                    text(as_map(item).get("write_date"), 30), "%Y-%m-%d %H:%M:%S"
                )
                cursor = max(cursor, written.replace(tzinfo=UTC))
            except ValueError:
                pass
        return changed, cursor
