"""Operator alerts: a JSON webhook, an email and/or SMS, each optional, never a flood.

`alert(kind, key, message, details)` returns at once; sending runs in the background and a
failure is logged, never raised. Two brakes keep 1000 dead letters from becoming 1000 mails:
- de-duplication: the same (kind, key) is not alerted again within `dedupe_s`;
- rate limit: at most one alert per kind per `min_interval_s`; what was held back is counted
  and reported in the next alert of that kind (`suppressed`).
A condition that clears is announced with `resolve(kind, key, message)` (`"status":
"resolved"`), only when its alert went out; it bypasses both brakes and re-arms the (kind,
key) so the next firing is alerted again. SMS goes through `bridge.alerts.sms` (a generic
HTTP gateway, Twilio, Vonage). SMTP uses stdlib smtplib in a worker thread (STARTTLS when
offered, LOGIN when `[alerts] smtp_username` is set). The SMTP password, the SMS token and
the gateways' answers are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiohttp
from prometheus_client import Counter

from bridge.alerts import sms
from bridge.clock import MonotonicClock
from bridge.component import Health
from bridge.config import AlertsConfig

__all__ = ["Alerter"]

log = logging.getLogger(__name__)

SENT = Counter("crm_bridge_alerts_sent", "Alerts sent", ["kind", "channel"])
FAILED = Counter("crm_bridge_alerts_failed", "Alerts that could not be sent", ["channel"])
SUPPRESSED = Counter("crm_bridge_alerts_suppressed", "Alerts held back by the rate limit", ["kind"])


class Alerter:
    name = "alerts"

    def __init__(
        self,
        config: AlertsConfig,
        *,
        min_interval_s: float = 300.0,
        dedupe_s: float = 3600.0,
        timeout_s: float = 10.0,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self.config = config
        self._min_interval = min_interval_s
        self._dedupe = dedupe_s
        self._timeout = timeout_s
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._last_sent: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._announced: set[tuple[str, str]] = set()
        self._chain: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.sent = 0
        self.failures = 0

    @property
    def channels(self) -> list[str]:
        """The configured channels, in sending order."""
        c = self.config
        out = []
        if c.webhook_url:
            out.append("webhook")
        if c.smtp_host and c.smtp_to:
            out.append("email")
        if c.sms_provider and c.sms_to:
            out.append("sms")
        return out

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    async def start(self) -> None:
        if (self.config.webhook_url or self.config.sms_provider) and self._session is None:
            self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def health(self) -> Health:
        detail = {"sent": self.sent, "failures": self.failures}
        if not self.enabled:
            return Health("disabled", required=False, detail=detail)
        return Health("up", required=False, detail=detail)

    async def drain(self) -> None:
        """Wait for alerts being sent (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def alert(
        self, kind: str, key: str, message: str, details: dict[str, Any] | None = None
    ) -> bool:
        """Queue an alert; False when de-duplicated, rate-limited or no channel is configured."""
        if not self.enabled:
            return False
        now = self._clock()
        self._seen = {k: t for k, t in self._seen.items() if now - t < self._dedupe}
        if (kind, key) in self._seen:
            return False
        self._seen[(kind, key)] = now
        last = self._last_sent.get(kind)
        if last is not None and now - last < self._min_interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            SUPPRESSED.labels(kind).inc()
            return False
        self._last_sent[kind] = now
        self._announced.add((kind, key))
        payload = self._payload("firing", kind, key, message, details)
        payload["suppressed"] = self._held.pop(kind, 0)
        self._spawn(payload)
        return True

    def resolve(
        self, kind: str, key: str, message: str, details: dict[str, Any] | None = None
    ) -> bool:
        """Announce that (kind, key) cleared; False when its alert never went out."""
        if (kind, key) not in self._announced:
            return False
        self._announced.discard((kind, key))
        self._seen.pop((kind, key), None)  # a new episode is a new alert
        self._spawn(self._payload("resolved", kind, key, message, details))
        return True

    async def send_test(self) -> dict[str, str | None]:
        """Send one test alert through every channel now: channel -> None or the error."""
        payload = self._payload(
            "test", "test", "test", "crm-bridge alert test: this channel works", {}
        )
        return await self._send(payload)

    def _payload(
        self, status: str, kind: str, key: str, message: str, details: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "status": status,
            "kind": kind,
            "key": key,
            "message": message,
            "details": details or {},
            "suppressed": 0,
            "at": datetime.now(UTC).isoformat(),
        }

    def _spawn(self, payload: dict[str, Any]) -> None:
        # A resolution must not overtake its alert on a slow channel: each (kind, key) sends
        # after the previous one of the same pair has finished.
        pair = (payload["kind"], payload["key"])
        before = self._chain.get(pair)
        task = asyncio.create_task(self._send_after(before, payload), name=f"alert-{pair[0]}")
        self._chain[pair] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(
            lambda t: self._chain.pop(pair, None) if self._chain.get(pair) is t else None
        )

    async def _send_after(self, before: asyncio.Task[None] | None, payload: dict[str, Any]) -> None:
        if before is not None:
            await asyncio.wait([before])
        await self._send(payload)

    async def _send(self, payload: dict[str, Any]) -> dict[str, str | None]:
        senders = {"webhook": self._webhook, "email": self._email, "sms": self._sms}
        results: dict[str, str | None] = {}
        for channel in self.channels:
            error = await senders[channel](payload)
            results[channel] = error
            if error is None:
                self.sent += 1
                SENT.labels(payload["kind"], channel).inc()
            else:
                self.failures += 1
                FAILED.labels(channel).inc()
                log.warning("alert %s failed (%s): %s", channel, payload["kind"], error)
        return results

    async def _sms(self, payload: dict[str, Any]) -> str | None:
        if self._session is None:
            await self.start()
        assert self._session is not None
        text = sms.sms_text(
            payload["kind"], payload["message"], resolved=payload["status"] == "resolved"
        )
        errors = []
        for request in sms.build_requests(self.config, text):
            try:
                async with asyncio.timeout(self._timeout):
                    async with self._session.request(
                        request.method, request.url, data=request.body, headers=request.headers
                    ) as resp:
                        body = await resp.content.read(65536)
                        if not sms.accepted(self.config.sms_provider, resp.status, body):
                            errors.append(f"HTTP {resp.status} refused")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                errors.append(type(exc).__name__)
        return "; ".join(errors) or None

    async def _webhook(self, payload: dict[str, Any]) -> str | None:
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with asyncio.timeout(self._timeout):
                async with self._session.post(
                    self.config.webhook_url,
                    data=json.dumps(payload, default=str),
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        raise RuntimeError(f"HTTP {resp.status}")
        except RuntimeError as exc:
            return str(exc)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return type(exc).__name__
        return None

    async def _email(self, payload: dict[str, Any]) -> str | None:
        msg = EmailMessage()
        state = "RESOLVED " if payload["status"] == "resolved" else ""
        subject = f"[crm-bridge] {state}{payload['kind']}: {payload['message']}"
        msg["Subject"] = " ".join(subject.split())[:200]  # no CR/LF header injection
        msg["From"] = self.config.smtp_from
        msg["To"] = ", ".join(self.config.smtp_to)
        body = [payload["message"], ""]
        if payload["suppressed"]:
            body.append(f"({payload['suppressed']} similar alerts were held back)")
        body.append(json.dumps(payload["details"], indent=2, default=str, ensure_ascii=False))
        msg.set_content("\n".join(body))
        try:
            await asyncio.to_thread(self._smtp_send, msg)
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            return type(exc).__name__
        return None

    def _smtp_send(self, msg: EmailMessage) -> None:
        c = self.config
        with smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=self._timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
            if c.smtp_username:
                smtp.login(c.smtp_username, c.smtp_password)
            smtp.send_message(msg)
