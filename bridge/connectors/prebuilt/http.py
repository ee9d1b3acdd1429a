"""The one HTTP adapter of the prebuilt connectors: a vendor's answer, or one of our errors.

What every vendor shares is handled here once:

- each request is bounded by `[crm] timeout_ms` (lookups are further bounded by the route
  budget, which cancels the await), and an answer is read up to `MAX_BODY` bytes;
- a 2xx body must be JSON in UTF-8 (an HTML login page, truncated or invalid bytes become
  `CrmError`, never a half-read customer);
- 429 (and 503 with `Retry-After`) sets a "not before" time: until it passes no request is
  sent, so lookups fail fast (the call takes the default route) and the outbox retries
  later, honouring the CRM's own figure (RFC 9110 §10.2.3: seconds or an HTTP date);
- 401 is `CrmRefused("credentials")` (the caller may refresh its token once), 403
  `CrmRefused("scope")`, other 5xx `CrmUnavailable`; any other status is returned for the
  vendor module to read (404, 204 and vendor-specific 400s).

aiohttp errors never leave this module. Error messages carry the status and the vendor's
error code, never a header or a request body, so no credential reaches a log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bridge.clock import MonotonicClock
from bridge.errors import CrmError, CrmRateLimited, CrmRefused, CrmTimeout, CrmUnavailable

__all__ = ["MAX_BODY", "Answer", "VendorHttp", "parse_retry_after"]

MAX_BODY = 2 << 20
MAX_RETRY_AFTER_S = 3600.0
DEFAULT_RETRY_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    payload: Any  # parsed JSON; None for an empty body


def parse_retry_after(raw: str | None, now: float | None = None) -> float:
    """Seconds to wait from a `Retry-After` value; a missing or silly one means 1 s."""
    if not raw:
        return DEFAULT_RETRY_AFTER_S
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_S
        if when.tzinfo is None:
            return DEFAULT_RETRY_AFTER_S
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # nan
        return DEFAULT_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def error_code(payload: Any) -> str:
    """The vendor's short error code (errorCode, category, code, error...), for messages."""
    item = payload[0] if isinstance(payload, list) and payload else payload
    if isinstance(item, dict):
        for key in ("errorCode", "category", "code", "error", "title"):
            value = item.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return "".join(c for c in str(value) if c.isprintable())[:80]
    return ""


def _decode(raw: bytes, content_type: str, vendor: str) -> Any:
    if not raw.strip():
        return None
    if "html" in content_type.lower():
        raise CrmError(f"{vendor} answered an HTML page, not JSON (a proxy or login page?)")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CrmError(f"{vendor} answered bytes that are not UTF-8") from exc
    except ValueError as exc:
        raise CrmError(f"{vendor} answered something that is not JSON") from exc


class VendorHttp:
    def __init__(
        self, vendor: str, timeout_s: float, *, clock: MonotonicClock = time.monotonic
    ) -> None:
        self.vendor = vendor
        self._timeout = timeout_s
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._not_before = 0.0
        self.requests = 0

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "asterisk-crm-bridge", "Accept": "application/json"}
            )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def rate_limited_for(self) -> float:
        return max(0.0, self._not_before - self._clock())

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        if self._session is None:
            raise CrmUnavailable(f"{self.vendor} connector not started")
        wait = self.rate_limited_for()
        if wait > 0:
            raise CrmRateLimited(f"{self.vendor} rate limit: retry in {wait:.0f} s", wait)
        data: Any = None
        send_headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body, default=str).encode()
            send_headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            data = aiohttp.FormData(dict(form))
        self.requests += 1
        try:
            async with asyncio.timeout(self._timeout):
                async with self._session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=send_headers,
                    allow_redirects=False,
                ) as resp:
                    raw = await resp.content.read(MAX_BODY + 1)
                    status = resp.status
                    content_type = resp.headers.get("Content-Type", "")
                    retry_after = resp.headers.get("Retry-After")
        except TimeoutError as exc:
            raise CrmTimeout(
                f"{self.vendor} did not answer within {self._timeout * 1000:.0f} ms"
            ) from exc
        except aiohttp.ClientError as exc:
            raise CrmUnavailable(f"cannot reach {self.vendor}: {type(exc).__name__}") from exc
        except ValueError as exc:  # an URL aiohttp refuses
            raise CrmUnavailable(f"bad {self.vendor} URL: {type(exc).__name__}") from exc
        if len(raw) > MAX_BODY:
            raise CrmError(f"{self.vendor} answer larger than {MAX_BODY >> 20} MiB")
        if status == 429 or (status == 503 and retry_after):
            seconds = parse_retry_after(retry_after)
            self._not_before = self._clock() + seconds
            raise CrmRateLimited(
                f"{self.vendor} is rate-limiting us (HTTP {status}): retry in {seconds:.0f} s",
                seconds,
            )
        try:
            payload = _decode(raw, content_type, self.vendor)
        except CrmError:
            if 200 <= status < 300:
                raise
            payload = None  # an error page: the status says enough
        code = error_code(payload)
        suffix = f" {code}" if code else ""
        if status == 401:
            raise CrmRefused("credentials", f"{self.vendor} refused our credentials{suffix}")
        if status == 403:
            raise CrmRefused(
                "scope", f"{self.vendor} denied access (missing scope or permission){suffix}"
            )
        if status >= 500 or status in (408, 425):
            raise CrmUnavailable(f"{self.vendor} answered HTTP {status}{suffix}")
        if 300 <= status < 400 and status != 304:  # 304: nothing changed (If-Modified-Since)
            raise CrmError(f"{self.vendor} answered a redirect (HTTP {status}): check base_url")
        return Answer(status, payload)
