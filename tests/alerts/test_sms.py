"""SMS alerts: requests shaped like Twilio's and Vonage's APIs and a generic gateway's, a
hostile message that cannot break the request, and delivery to a fake gateway on loopback."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest

from bridge.alerts import Alerter
from bridge.alerts.sms import accepted, build_requests, sms_text
from bridge.config import build_config
from bridge.errors import ConfigError
from tests.alerts.receivers import SmsGateway

HOSTILE = 'disk "full"\r\nX-Injected: 1 {to} \x00 & a=b ü <b>'


def sms_config(**values: object) -> object:
    return build_config({"alerts": values}, {}, runtime=False).alerts


def test_twilio_request_is_a_form_post_with_basic_auth() -> None:
    cfg = sms_config(
        sms_provider="twilio",
        sms_account="AC1",
        sms_token="tok",
        sms_from="+15550001",
        sms_to=["+15550002", "+15550003"],
    )
    first, second = build_requests(cfg, "hello")  # type: ignore[arg-type]
    assert first.url == "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
    assert first.method == "POST"
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(b"AC1:tok").decode()
    assert parse_qs(first.body.decode()) == {
        "To": ["+15550002"],
        "From": ["+15550001"],
        "Body": ["hello"],
    }
    assert parse_qs(second.body.decode())["To"] == ["+15550003"]


def test_vonage_request_carries_key_and_secret_and_digits_only_numbers() -> None:
    cfg = sms_config(
        sms_provider="vonage",
        sms_account="key",
        sms_token="secret",
        sms_from="CRMBridge",
        sms_to=["+447700900000"],
    )
    (req,) = build_requests(cfg, "hello")  # type: ignore[arg-type]
    assert req.url == "https://rest.nexmo.com/sms/json"
    assert parse_qs(req.body.decode()) == {
        "api_key": ["key"],
        "api_secret": ["secret"],
        "from": ["CRMBridge"],
        "to": ["447700900000"],
        "text": ["hello"],
    }


def test_generic_template_escapes_a_hostile_message_for_json() -> None:
    cfg = sms_config(
        sms_provider="generic",
        sms_url="https://sms.example/send?to={to}",
        sms_auth_header="X-Api-Key: k1",
        sms_from="+1555",
        sms_to=["+1 555&x"],
    )
    text = sms_text("spool_disk", HOSTILE)
    (req,) = build_requests(cfg, text)  # type: ignore[arg-type]
    assert req.url == "https://sms.example/send?to=%2B1+555%26x"
    assert req.headers["X-Api-Key"] == "k1"
    body = json.loads(req.body)
    assert body == {"to": "+1 555&x", "from": "+1555", "text": text}
    assert "\r" not in text and "\n" not in text and "\x00" not in text


def test_vonage_refusal_inside_a_200_is_not_success() -> None:
    ok = json.dumps({"messages": [{"status": "0"}]}).encode()
    refused = json.dumps({"messages": [{"status": "4"}]}).encode()
    assert accepted("vonage", 200, ok)
    assert not accepted("vonage", 200, refused)
    assert not accepted("vonage", 200, b"<html>")
    assert accepted("twilio", 201, b"")
    assert not accepted("twilio", 401, b"")


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"sms_provider": "carrier-pigeon", "sms_to": ["+1"]}, "alerts.sms_provider"),
        ({"sms_provider": "twilio", "sms_to": ["+1"], "sms_from": "+2"}, "alerts.sms_account"),
        ({"sms_provider": "generic", "sms_to": ["+1"]}, "alerts.sms_url"),
        ({"sms_provider": "generic", "sms_url": "https://x"}, "alerts.sms_to"),
        ({"link_down_s": 0}, "alerts.link_down_s"),
        ({"degraded_pct": 101}, "alerts.degraded_pct"),
    ],
)
def test_an_incomplete_sms_gateway_or_bad_threshold_names_its_key(
    values: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        sms_config(**values)
    assert key in str(err.value)


@pytest.mark.parametrize("provider", ["twilio", "vonage", "generic"])
async def test_each_provider_delivers_to_the_gateway(gateway: SmsGateway, provider: str) -> None:
    urls = {
        "twilio": f"{gateway.base}/2010-04-01/Accounts/AC9/Messages.json",
        "vonage": f"{gateway.base}/sms/json",
        "generic": f"{gateway.base}/send",
    }
    cfg = sms_config(
        sms_provider=provider,
        sms_url=urls[provider],
        sms_account="AC9",
        sms_token="t0k",
        sms_from="+15550001",
        sms_to=["+15550002"],
        sms_auth_header="X-Api-Key: k1",
    )
    alerter = Alerter(cfg)  # type: ignore[arg-type]
    await alerter.start()
    try:
        assert alerter.channels == ["sms"]
        assert alerter.alert("ami_down", "condition", HOSTILE)
        await alerter.drain()
        gateway.refuse = True
        assert await alerter.send_test() == {
            "sms": "HTTP "
            + {"twilio": "400", "vonage": "200", "generic": "503"}[provider]
            + " refused"
        }
    finally:
        await alerter.stop()
    first = gateway.received[0]
    assert first["provider"] == provider
    assert first["text"] == sms_text("ami_down", HOSTILE)
    assert alerter.sent == 1 and alerter.failures == 1
