"""Caller ID → E.164, or None when the caller ID is not a usable phone number.

The PBX hands us whatever the trunk sent: `anonymous`, `<unknown>`, national numbers,
numbers with `00`/`+` prefixes, and sometimes junk. A number becomes E.164 when
`phonenumbers` finds it valid, or when it has a known country code and exactly the right
length for that country's plan ("possible"): number plans change faster than the library's
metadata, and fictional ranges such as NANP `555` (used by labs and the recorded traces)
are well-formed but never "valid". Everything else is None, so routing treats the caller
as unknown.
"""

from __future__ import annotations

import re

import phonenumbers

# Longest real input: "+" and 15 digits plus generous punctuation/spacing ("+1 (555) 123-0001").
MAX_INPUT = 64

_ANONYMOUS = frozenset(
    {"", "anonymous", "unknown", "<unknown>", "unavailable", "private", "restricted", "withheld"}
)
# Characters a dialled/caller number may contain; anything else means it is not a number.
_ALLOWED = re.compile(r"[0-9+()\-. /]+")


def normalise(raw: str, default_region: str) -> str | None:
    """E.164 (`+15551230001`) for a valid number, else None. Never raises on bad input."""
    if not isinstance(raw, str) or len(raw) > MAX_INPUT:
        return None
    text = raw.strip(" ")
    if text.lower() in _ANONYMOUS or not _ALLOWED.fullmatch(text):
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    region = (default_region or "").upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = "ZZ"  # only numbers with an explicit country code can parse
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        reason = phonenumbers.is_possible_number_with_reason(number)
        if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
            return None
        if phonenumbers.region_code_for_country_code(number.country_code or 0) == "ZZ":
            return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
