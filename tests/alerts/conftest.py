"""Loopback alert receivers (webhook, SMTP, SMS gateway) and an alerter wired to all three."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bridge.alerts import Alerter
from bridge.config import AlertsConfig, build_config
from tests.alerts.receivers import SmsGateway, SmtpReceiver, WebhookReceiver


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver()
    await r.start()
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    r = SmtpReceiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
async def gateway() -> AsyncIterator[SmsGateway]:
    r = SmsGateway()
    await r.start()
    try:
        yield r
    finally:
        await r.close()


@dataclass
class Channels:
    """The three receivers and an alerter sending to all of them (Twilio-shaped SMS)."""

    hook: WebhookReceiver
    smtp: SmtpReceiver
    sms: SmsGateway
    alerter: Alerter

    def config(self, **extra: Any) -> AlertsConfig:
        return all_channels(self.hook, self.smtp, self.sms, **extra)

    def seen(self) -> list[tuple[str, str]]:
        """(status, kind) of every webhook alert, checked against the mail and SMS copies."""
        got = [(p["status"], p["kind"]) for p in self.hook.received]
        subjects = [" ".join(str(m["Subject"]).split()) for m in self.smtp.messages]
        texts = self.sms.texts()
        assert len(subjects) == len(texts) == len(got), (got, subjects, texts)
        for (status, kind), subject, text in zip(got, subjects, texts, strict=True):
            word = "RESOLVED " if status == "resolved" else ""
            assert subject.startswith(f"[crm-bridge] {word}{kind}: "), subject
            assert text.startswith(f"[crm-bridge] {word}{kind}: "), text
        return got


def all_channels(
    hook: WebhookReceiver, smtp: SmtpReceiver, sms: SmsGateway, **extra: Any
) -> AlertsConfig:
    values: dict[str, Any] = {
        "webhook_url": hook.url,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_to": ["ops@example.test"],
        "sms_provider": "twilio",
        "sms_url": f"{sms.base}/2010-04-01/Accounts/AC123/Messages.json",
        "sms_account": "AC123",
        "sms_token": "tw-token",
        "sms_from": "+15550000000",
        "sms_to": ["+15551112222"],
    }
    values.update(extra)
    return build_config({"alerts": values}, {}, runtime=False).alerts


@pytest.fixture
async def channels(
    hook: WebhookReceiver, smtp: SmtpReceiver, gateway: SmsGateway
) -> AsyncIterator[Channels]:
    alerter = Alerter(all_channels(hook, smtp, gateway))
    await alerter.start()
    try:
        yield Channels(hook, smtp, gateway, alerter)
    finally:
        await alerter.stop()
