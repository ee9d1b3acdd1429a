"""Which numbers a click-to-call may dial, as a pure function tested by a table.

Originate is how PBXs get owned (CVE-2024-42365: a manager user with `originate` write could
reach `Application=System`). The bridge never sends Application/Data, and the one value from
the request that reaches the PBX is the number, as `Exten`. So the number must be digits and
nothing else: the typed text may hold only digits, spaces and `+ ( ) - .` (no `*`, `#`, `,`,
letters or control characters: `1234,Application,System` never parses); it must parse with
`phonenumbers` as a possible number of a known country; premium-rate and shared-cost numbers
are refused (toll fraud); and when `[dial] allow` lists prefixes, its E.164 form must start
with one. `Exten` is then the number in digits as a phone in the PBX's region dials it
(`DialTarget.digits`), which the outbound context routes to its trunk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

__all__ = ["DialTarget", "NumberRefused", "check_number"]

MAX_INPUT = 32  # "+" and 15 digits with generous spacing
MAX_DIGITS = 20  # 15 of E.164 and an international prefix
_ALLOWED = re.compile(r"[0-9+()\-. ]+")
_REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate numbers are not dialled",
    PhoneNumberType.SHARED_COST: "shared-cost numbers are not dialled",
}


class NumberRefused(ValueError):
    """The number may not be dialled; `reason` says why, in words for the agent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DialTarget:
    e164: str  # +15551230002: what the record and the customer lookup use
    digits: str  # 15551230002, 0118613800138000: the Originate's Exten


def check_number(raw: object, *, region: str, allow: Sequence[str] = ()) -> DialTarget:
    """The number's E.164 form and digits, or `NumberRefused`. Never raises anything else."""
    if not isinstance(raw, str):
        raise NumberRefused("the number must be text")
    if len(raw) > MAX_INPUT:
        raise NumberRefused(f"the number is longer than {MAX_INPUT} characters")
    text = raw.strip(" ")
    if not text:
        raise NumberRefused("the number is empty")
    if not _ALLOWED.fullmatch(text):
        raise NumberRefused("only digits, spaces and + ( ) - . may be in a number")
    if "+" in text[1:]:
        raise NumberRefused("'+' may only start the number")
    if text.startswith("00"):
        text = "+" + text[2:]
    region = region.upper() if region.upper() in phonenumbers.SUPPORTED_REGIONS else "ZZ"
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise NumberRefused("not a phone number") from exc
    if number.extension:
        raise NumberRefused("extensions cannot be dialled")
    country = phonenumbers.region_code_for_country_code(number.country_code or 0)
    if country == "ZZ":
        raise NumberRefused("unknown country code")
    # Valid, or of the right length (fictional ranges such as NANP 555, newer plans).
    if not (phonenumbers.is_valid_number(number) or phonenumbers.is_possible_number(number)):
        raise NumberRefused("not a dialable number (wrong length for its country)")
    refused = _REFUSED_TYPES.get(phonenumbers.number_type(number))
    if refused:
        raise NumberRefused(refused)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if allow and not any(e164.startswith(prefix) for prefix in allow):
        raise NumberRefused("this number is outside the prefixes [dial] allow lists")
    # As a phone in the PBX's region dials it: national numbers with their trunk prefix
    # (15551230002 in the US, 02079460000 in the UK), others after the region's international
    # prefix (011 in the US, 00 in Europe). The trunk needs that, and the call tracker reads
    # the dialled number in the same region (bridge/records/store.py), finding the customer.
    dialled = phonenumbers.format_out_of_country_calling_number(number, region)
    digits = re.sub(r"[^0-9]", "", dialled)
    if dialled.lstrip().startswith("+") or not 3 <= len(digits) <= MAX_DIGITS:
        raise NumberRefused("this number cannot be dialled from the PBX's region")
    return DialTarget(e164=e164, digits=digits)
