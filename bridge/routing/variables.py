"""A routing decision as the CONTRACT channel variables, in the order both modes set them.

Pure, and shared by the FastAGI route and the ARI app so the two modes cannot drift. Values
end up in the dialplan and in logs: CR, LF, NUL and other control characters become spaces
and every value is length-capped. Quoting for the wire is the transport's job (AGI's
`SET VARIABLE "..."` escapes quotes and backslashes; ARI passes URL query parameters).
"""

from __future__ import annotations

import re

from bridge.models import Decision

__all__ = [
    "MAX_VALUE_CHARS",
    "VARIABLE_NAMES",
    "contract_variables",
    "plain_text",
    "recording_name",
]

MAX_VALUE_CHARS = 1024

VARIABLE_NAMES = (
    "BRIDGE_QUEUE",
    "BRIDGE_PRIORITY",
    "BRIDGE_RULE",
    "BRIDGE_CUSTOMER_ID",
    "BRIDGE_CUSTOMER_NAME",
    "BRIDGE_TAGS",
    "BRIDGE_DEGRADED",
    "BRIDGE_RECORDING",
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What a channel id may contribute to a file name; anything else falls back.
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def plain_text(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """Every control character (TAB too) → a space, lone surrogates dropped, at most `limit`
    characters: what a channel variable the bridge sets (over AGI or ARI) may hold, and how
    the ARI app keeps what the PBX reports about a channel. Compare
    `bridge.agi.protocol.argument_text`, which keeps TAB for the AGI wire."""
    text = _CONTROL.sub(" ", text)
    if not text.isascii():  # ASCII holds no surrogate: the round trip only for the rest
        text = text.encode("utf-8", "ignore").decode("utf-8")
    return text[:limit]


def recording_name(template: str, *, linkedid: str, uniqueid: str) -> str:
    """Fill `[pbx] recording_template` (`${linkedid}`, `${uniqueid}`).

    The ids come from the PBX; one that is not a plain token (`1795464289.67`) is replaced by
    the other, so a hostile id can never add a path separator to the file name.
    """
    unique = uniqueid if _SAFE_ID.fullmatch(uniqueid) else "unknown"
    linked = linkedid if _SAFE_ID.fullmatch(linkedid) else unique
    return plain_text(template.replace("${linkedid}", linked).replace("${uniqueid}", unique))


def contract_variables(decision: Decision, recording: str) -> list[tuple[str, str]]:
    """(name, value) pairs in setting order; BRIDGE_QUEUE first, as the dialplan reads it."""
    customer = decision.customer
    tags = (
        ",".join(
            t for t in (plain_text(tag).replace(",", " ").strip() for tag in customer.tags) if t
        )
        if customer
        else ""
    )
    values = (
        decision.queue,
        str(int(decision.priority)),
        decision.rule,
        customer.id if customer else "",
        customer.name if customer else "",
        tags,
        "1" if decision.degraded else "0",
        recording,
    )
    return [(name, plain_text(value)) for name, value in zip(VARIABLE_NAMES, values, strict=True)]
