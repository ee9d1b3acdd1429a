"""A generic REST CRM over aiohttp.

- Lookup: `GET [crm] lookup_url` with `{phone}` replaced by the E.164 number
  (percent-encoded); 200 with a customer (or a list, first wins) -> `Customer`; 404, `null`
  or `[]` -> None.
- Records: `POST [crm] records_url` with `{call_id}` replaced, the record as JSON (keys
  renamed by `[crm] field_map`), and `Idempotency-Key: <call_id>`; any 2xx, or 409 (they
  already have it), is success.
- Merges: `POST [crm] merge_url` (`{merge_id}` replaced) with `{"merge_id", "survivor_id",
  "merged_ids", "at", "actor"}` and `Idempotency-Key: <merge id>`; any 2xx or 409 is
  success. No `merge_url`: the merge is acknowledged without sending anything.
- Create customer (the desk): `POST [crm] create_url` (`{phone}` replaced) with
  `{"name", "phone", "tags"}` and a fresh `Idempotency-Key`; 2xx with the customer (an `id`
  is required) -> `Customer`; 409 -> `DuplicatePhone` (the CRM knows the number); 400/422
  -> `ValidationError`. No `create_url`: `CrmRefused(kind="unsupported")`. Correcting a
  customer is not offered by the generic REST connector (`unsupported`).
- `[crm] auth_header` ("Name: value") goes on every request and is never logged.
- Every attempt is bounded by `[crm] timeout_ms`; connection failures, timeouts, 429 and
  5xx are retried `retries` times with jittered exponential backoff.

aiohttp errors never leave this module: `CrmUnavailable` (unreachable), `CrmTimeout`
(too slow), `DeliveryError` (an HTTP status that refuses the record), `CrmError` (nonsense).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from bridge.component import Health
from bridge.config import CrmConfig
from bridge.connectors.mapping import (
    customer_from_payload,
    expand,
    map_record,
    parse_auth_header,
)
from bridge.errors import (
    CrmError,
    CrmRefused,
    CrmTimeout,
    CrmUnavailable,
    DeliveryError,
    DuplicatePhone,
    ValidationError,
)
from bridge.models import Customer
from bridge.tasks import Backoff

if TYPE_CHECKING:
    from bridge.crm.merge import MergeRecord

__all__ = ["RestConnector", "merge_document"]

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def merge_document(record: MergeRecord) -> dict[str, Any]:
    """What a REST CRM receives of a merge: ids are data (JSON-escaped), never markup."""
    return {
        "merge_id": record.id,
        "survivor_id": record.survivor_id,
        "merged_ids": list(record.merged_ids),
        "at": record.at,
        "actor": record.actor,
    }


def _header_value(key: str) -> str:
    # Header values cannot carry CR/LF/NUL; a hostile key is sent percent-encoded.
    return expand("{k}", "k", key) if any(c in key for c in "\r\n\x00") else key


class _Retryable(Exception):
    def __init__(self, error: CrmError | DeliveryError) -> None:
        super().__init__(str(error))
        self.error = error


class RestConnector:
    name = "crm"

    def __init__(
        self,
        config: CrmConfig,
        *,
        retries: int = 2,
        backoff_s: float = 0.05,
        lookup_retries: int = 0,
    ) -> None:
        self._lookup_url = config.lookup_url
        self._records_url = config.records_url
        self._merge_url = config.merge_url
        self._create_url = config.create_url
        self._field_map = dict(config.field_map)
        self._timeout = config.timeout_ms / 1000
        self._auth = parse_auth_header(config.auth_header)
        self._retries = max(0, retries)
        self._lookup_retries = max(0, lookup_retries)
        self._backoff = Backoff(backoff_s, math.inf)  # `retries` ends it; delay(n) only
        self._session: aiohttp.ClientSession | None = None
        self._last_error: str | None = None

    def __repr__(self) -> str:  # the auth header must never show up in logs
        return f"RestConnector(lookup_url={self._lookup_url!r}, records_url={self._records_url!r})"

    async def start(self) -> None:
        if self._session is None:
            headers = {"Accept": "application/json", "User-Agent": "asterisk-crm-bridge"}
            if self._auth is not None:
                headers[self._auth[0]] = self._auth[1]
            self._session = aiohttp.ClientSession(headers=headers)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def health(self) -> Health:
        detail: dict[str, Any] = {"connector": "rest"}
        if self._session is None:
            return Health("down", required=False, detail=detail)
        if self._last_error:
            return Health("degraded", required=False, detail={**detail, "error": self._last_error})
        return Health("up", required=False, detail=detail)

    # --- the two operations ------------------------------------------------------------------

    async def lookup(self, e164: str) -> Customer | None:
        if not self._lookup_url:
            return None
        url = expand(self._lookup_url, "phone", e164)
        try:
            status, body = await self._request("GET", url, None, {}, self._lookup_retries)
        except DeliveryError as exc:  # a 5xx/429 answer to a lookup: the CRM is not available
            raise CrmUnavailable(str(exc)) from exc
        if status == 404:
            return None
        if not 200 <= status < 300:
            raise CrmUnavailable(f"CRM lookup answered HTTP {status}")
        if not body.strip():
            return None
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CrmError("CRM lookup answered something that is not JSON") from exc
        return customer_from_payload(payload, self._field_map)

    async def post_record(self, record: Mapping[str, Any]) -> None:
        if not self._records_url:
            raise DeliveryError("[crm] records_url is not set")
        call_id = str(record.get("call_id", ""))
        if not call_id:
            raise DeliveryError("record without call_id")
        url = expand(self._records_url, "call_id", call_id)
        body = json.dumps(map_record(record, self._field_map), default=str).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": _header_value(call_id)}
        status, text = await self._request("POST", url, body, headers, self._retries)
        if 200 <= status < 300 or status == 409:
            return
        raise DeliveryError(f"CRM refused call record {call_id!r}: HTTP {status} {text[:200]!r}")

    async def merged(self, record: MergeRecord) -> None:
        if not self._merge_url:
            return  # nowhere to send it: acknowledged, as documented for [crm] merge_url
        key = str(record.id)
        url = expand(self._merge_url, "merge_id", key)
        body = json.dumps(merge_document(record)).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        status, text = await self._request("POST", url, body, headers, self._retries)
        if 200 <= status < 300 or status == 409:
            return
        raise DeliveryError(f"CRM refused merge {key}: HTTP {status} {text[:200]!r}")

    async def create_customer(
        self, name: str, e164: str, tags: Sequence[str] = (), *, actor: str = ""
    ) -> Customer:
        if not self._create_url:
            raise CrmRefused("unsupported", "set [crm] create_url to create customers in the CRM")
        url = expand(self._create_url, "phone", e164)
        body = json.dumps({"name": name, "phone": e164, "tags": list(tags)}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(16)}
        try:
            status, text = await self._request("POST", url, body, headers, self._retries)
        except DeliveryError as exc:
            raise CrmUnavailable(str(exc)) from exc
        if status == 409:
            raise DuplicatePhone(e164, "in the CRM")
        if status in (400, 422):
            raise ValidationError("customer", f"the CRM refused it: {text[:200]!r}")
        if not 200 <= status < 300:
            raise CrmError(f"CRM create answered HTTP {status}")
        try:
            created = customer_from_payload(json.loads(text), self._field_map)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CrmError("CRM create answered something that is not JSON") from exc
        if created is None or not created.id:
            raise CrmError("CRM create answered no customer id")
        return created

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None,
        tags: Sequence[str] | None,
        actor: str,
        allowed: Callable[[str | None], bool],
    ) -> Customer:
        raise CrmRefused("unsupported", "correct this customer in the CRM itself")

    # --- transport -----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        retries: int,
    ) -> tuple[int, str]:
        if self._session is None:
            raise CrmUnavailable("REST connector not started")
        attempt = 0
        while True:
            try:
                result = await self._once(method, url, body, headers)
                self._last_error = None
                return result
            except _Retryable as exc:
                self._last_error = str(exc.error)[:300]
                if attempt >= retries:
                    raise exc.error from exc.__cause__
            attempt += 1
            await asyncio.sleep(self._backoff.delay(attempt - 1))

    async def _once(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str]:
        assert self._session is not None
        try:
            async with asyncio.timeout(self._timeout):
                async with self._session.request(
                    method, url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    raw = await resp.content.read(MAX_BODY + 1)
                    if len(raw) > MAX_BODY:
                        raise CrmError("CRM answer larger than 1 MiB")
                    text = raw.decode("utf-8", "replace")
                    status = resp.status
        except TimeoutError as exc:
            raise _Retryable(
                CrmTimeout(f"CRM did not answer within {self._timeout * 1000:.0f} ms")
            ) from exc
        except aiohttp.ClientError as exc:
            raise _Retryable(CrmUnavailable(f"cannot reach the CRM: {type(exc).__name__}")) from exc
        except ValueError as exc:  # e.g. an URL aiohttp refuses
            raise CrmUnavailable(f"bad CRM request: {exc}") from exc
        if status in _RETRY_STATUS:
            raise _Retryable(DeliveryError(f"CRM answered HTTP {status}"))
        return status, text
