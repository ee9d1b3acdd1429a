"""Alerts reach a webhook and a mailbox on loopback, once, however many times they fire."""

from __future__ import annotations

import logging
import socket

import pytest

from bridge.alerts import Alerter
from bridge.config import build_config
from tests.alerts.receivers import SmtpReceiver, WebhookReceiver


def alerts_config(webhook: str = "", smtp_port: int = 0, **extra: object) -> object:
    values: dict[str, object] = {"webhook_url": webhook, "smtp_to": ["ops@example.test"]}
    if smtp_port:
        values.update(smtp_host="127.0.0.1", smtp_port=smtp_port)
    values.update(extra)
    return build_config({"alerts": values}, {}, runtime=False).alerts


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_alert_goes_to_webhook_and_email(hook: WebhookReceiver, smtp: SmtpReceiver) -> None:
    a = Alerter(alerts_config(hook.url, smtp.port))  # type: ignore[arg-type]
    await a.start()
    try:
        assert a.alert("dead_letter", "1.1", "call record 1.1 undeliverable", {"attempts": 5})
        await a.drain()
    finally:
        await a.stop()
    (payload,) = hook.received
    assert payload["kind"] == "dead_letter" and payload["details"] == {"attempts": 5}
    (mail,) = smtp.messages
    assert mail["Subject"] == "[crm-bridge] dead_letter: call record 1.1 undeliverable"
    assert mail["To"] == "ops@example.test"
    assert '"attempts": 5' in mail.get_payload()


async def test_a_thousand_dead_letters_make_one_mail_then_a_summary(
    hook: WebhookReceiver, smtp: SmtpReceiver
) -> None:
    clock = FakeClock()
    a = Alerter(alerts_config(hook.url, smtp.port), min_interval_s=300, clock=clock)  # type: ignore[arg-type]
    await a.start()
    try:
        sent = [a.alert("dead_letter", f"call-{i}", f"record call-{i} dead") for i in range(1000)]
        await a.drain()
        assert sent.count(True) == 1
        assert len(smtp.messages) == 1 and len(hook.received) == 1
        clock.now += 301  # the rate-limit window has passed
        assert a.alert("dead_letter", "call-1000", "record call-1000 dead")
        await a.drain()
    finally:
        await a.stop()
    assert hook.received[-1]["suppressed"] == 999
    assert "999 similar alerts were held back" in smtp.messages[-1].get_payload()


async def test_the_same_alert_twice_is_sent_once(hook: WebhookReceiver) -> None:
    clock = FakeClock()
    a = Alerter(alerts_config(hook.url), min_interval_s=0, clock=clock)  # type: ignore[arg-type]
    await a.start()
    try:
        assert a.alert("sync_lag", "bucket-1", "lagging")
        clock.now += 10
        assert not a.alert("sync_lag", "bucket-1", "lagging")
        assert a.alert("sync_lag", "bucket-2", "still lagging")
        await a.drain()
    finally:
        await a.stop()
    assert [p["key"] for p in hook.received] == ["bucket-1", "bucket-2"]


async def test_failing_channels_are_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad_hook = WebhookReceiver(status=500)
    await bad_hook.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
        a = Alerter(
            alerts_config(  # type: ignore[arg-type]
                bad_hook.url, dead_port, smtp_username="u", smtp_password="hunter2-secret"
            )
        )
        await a.start()
        try:
            assert a.alert("dead_letter", "x", "boom")
            await a.drain()
        finally:
            await a.stop()
            await bad_hook.close()
    assert a.failures == 2 and a.sent == 0
    assert "alert webhook failed" in caplog.text and "alert email failed" in caplog.text
    assert "hunter2-secret" not in caplog.text


async def test_no_channel_configured_sends_nothing() -> None:
    a = Alerter(build_config({}, {}, runtime=False).alerts)
    await a.start()
    assert not a.alert("dead_letter", "x", "boom")
    assert a.health().state == "disabled"
    await a.stop()


async def test_crlf_in_a_message_cannot_inject_mail_headers(smtp: SmtpReceiver) -> None:
    a = Alerter(alerts_config(smtp_port=smtp.port))  # type: ignore[arg-type]
    await a.start()
    try:
        a.alert("dead_letter", "k", "line1\r\nBcc: victim@example.test\r\n\r\nbody")
        await a.drain()
    finally:
        await a.stop()
    (mail,) = smtp.messages
    assert mail["Bcc"] is None
    assert "\n" not in mail["Subject"]


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
