"""SMS alerts through an HTTP gateway: one request per recipient, built by a pure function.

Three shapes (`[alerts] sms_provider`):
- `generic`: `sms_method` to `sms_url` with `sms_auth_header` and `sms_body`, a template
  whose `{to}`, `{from}` and `{message}` are replaced by values escaped for
  `sms_content_type` (JSON string content, or form/URL encoding), so a message holding
  quotes, braces or CR/LF cannot change the request's structure.
- `twilio`: Programmable Messaging, `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
  with form fields `To`, `From`, `Body` and HTTP Basic auth (Account SID : Auth Token);
  success is a 2xx answer (201 Created).
- `vonage`: the SMS API, `POST https://rest.nexmo.com/sms/json` with form fields `api_key`,
  `api_secret`, `from`, `to` (digits, no `+`), `text`; the answer is 200 even when the
  message is refused, so success is every `messages[].status == "0"`.
`sms_url` overrides a provider's API address (proxies, tests).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, urlencode

from bridge.config import AlertsConfig

__all__ = ["SmsRequest", "accepted", "build_requests", "sms_text"]

TWILIO_URL = "https://api.twilio.com/2010-04-01/Accounts/{account}/Messages.json"
VONAGE_URL = "https://rest.nexmo.com/sms/json"
MAX_TEXT = 300  # two or three SMS segments; the rest is in the e-mail and the webhook
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class SmsRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def sms_text(kind: str, message: str, *, resolved: bool = False) -> str:
    """One line, control characters removed, bounded."""
    prefix = "RESOLVED " if resolved else ""
    text = f"[crm-bridge] {prefix}{kind}: {message}"
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text[:MAX_TEXT]


def _escape(value: str, content_type: str) -> str:
    if "json" in content_type:
        return json.dumps(value, ensure_ascii=False)[1:-1]
    return quote_plus(value)


def _fill(template: str, values: dict[str, str], escape: str) -> str:
    # One pass over the template: a value containing "{to}" is not expanded again.
    out, i = [], 0
    while i < len(template):
        for name, value in values.items():
            token = "{" + name + "}"
            if template.startswith(token, i):
                out.append(_escape(value, escape))
                i += len(token)
                break
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def build_requests(config: AlertsConfig, text: str) -> list[SmsRequest]:
    """The HTTP requests that send `text` to every `sms_to` number (empty when SMS is off)."""
    provider = config.sms_provider
    out: list[SmsRequest] = []
    for to in config.sms_to:
        if provider == "twilio":
            url = config.sms_url or TWILIO_URL.format(account=quote(config.sms_account, safe=""))
            body = urlencode({"To": to, "From": config.sms_from, "Body": text})
            headers = {
                "Authorization": _basic(config.sms_account, config.sms_token),
                "Content-Type": FORM,
            }
            out.append(SmsRequest("POST", url, headers, body.encode()))
        elif provider == "vonage":
            fields = {
                "api_key": config.sms_account,
                "api_secret": config.sms_token,
                "from": config.sms_from.lstrip("+"),
                "to": to.lstrip("+"),
                "text": text,
            }
            url = config.sms_url or VONAGE_URL
            out.append(SmsRequest("POST", url, {"Content-Type": FORM}, urlencode(fields).encode()))
        elif provider == "generic":
            values = {"to": to, "from": config.sms_from, "message": text}
            ctype = config.sms_content_type
            headers = {"Content-Type": ctype}
            if config.sms_auth_header:
                name, _, value = config.sms_auth_header.partition(":")
                headers[name.strip()] = value.strip()
            url = _fill(config.sms_url, values, FORM)  # `{to}` in a URL is URL-encoded
            method = config.sms_method.upper()
            data = b"" if method == "GET" else _fill(config.sms_body, values, ctype).encode()
            out.append(SmsRequest(method, url, headers, data))
    return out


def accepted(provider: str, status: int, body: bytes) -> bool:
    """Did the gateway take the message? Vonage answers 200 with a per-message status."""
    if not 200 <= status < 300:
        return False
    if provider != "vonage":
        return True
    try:
        messages = json.loads(body).get("messages") or []
    except (ValueError, AttributeError):
        return False
    return bool(messages) and all(
        isinstance(m, dict) and str(m.get("status")) == "0" for m in messages
    )
