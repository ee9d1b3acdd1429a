"""The project's one exception tree.

Foreign exceptions (asyncpg, aiohttp, websockets, panoramisk) are mapped to these at the
adapter that meets them, so nothing above an adapter ever imports a driver to catch it.

BridgeError
├── ConfigError            bad or missing configuration; names the key (CLI exit 2)
├── UsageError             bad command-line usage (CLI exit 2)
│   └── MergeConflict      customers to merge disagree and no policy says who wins
├── ProtocolError          a peer sent bytes that break its wire protocol
│   ├── AgiProtocolError   FastAGI header or reply
│   ├── AmiProtocolError   AMI frame
│   └── AriProtocolError   ARI JSON event or REST reply
├── UnsafeValueError       a value we were about to send carries CR/LF/NUL or is too long
├── CrmError               the CRM store or an external CRM failed
│   ├── CrmUnavailable     cannot be reached now (retry later)
│   ├── CrmTimeout         did not answer within the time budget
│   ├── CrmRateLimited     the CRM said 429: nothing is sent before `retry_after_s` passes
│   └── CrmRefused         the CRM refused us: bad credentials, missing scope, unknown field
├── ValidationError        an input (CSV row, API body, rule spec) is malformed; names the field
│   └── DuplicatePhone     a phone already belongs to another customer
├── NotFound               a named thing does not exist
├── AuthError              missing or wrong token, signature or credentials
├── LinkDown               a PBX link (AMI, ARI) is not connected
└── DeliveryError          an external system refused or failed a delivery
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"configuration {key}: {reason}")
        self.key = key
        self.reason = reason


class UsageError(BridgeError):
    pass


class MergeConflict(UsageError):
    """Merging would have to pick between different values; `conflicts` names each one."""

    def __init__(self, conflicts: list[str]) -> None:
        super().__init__(
            "refused, nothing changed: "
            + "; ".join(conflicts)
            + " (choose with --on-conflict survivor or --owner)"
        )
        self.conflicts = conflicts


class ProtocolError(BridgeError):
    pass


class AgiProtocolError(ProtocolError):
    pass


class AmiProtocolError(ProtocolError):
    pass


class AriProtocolError(ProtocolError):
    pass


class UnsafeValueError(BridgeError):
    pass


class CrmError(BridgeError):
    pass


class CrmUnavailable(CrmError):
    pass


class CrmTimeout(CrmError):
    pass


class CrmRateLimited(CrmUnavailable):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CrmRefused(CrmError):
    """`kind` is `credentials`, `scope`, `field` or `request`: what the admin must fix."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ValidationError(BridgeError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class DuplicatePhone(ValidationError):
    def __init__(self, phone: str, owner_id: str) -> None:
        super().__init__("phones", f"{phone} already belongs to customer {owner_id}")
        self.phone = phone
        self.owner_id = owner_id


class NotFound(BridgeError):
    pass


class AuthError(BridgeError):
    pass


class LinkDown(BridgeError):
    pass


class DeliveryError(BridgeError):
    pass
