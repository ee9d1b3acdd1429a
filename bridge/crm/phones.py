"""A phone number as the PBX hands it over → E.164, or None when it is not a usable number.

The one rule, for every caller ID (inbound calls, routing, screen-pops, call records) and
every number an agent dialled (outbound calls, click-to-call callbacks):

- International forms keep their country code: `+44 20 7946 0958`, `0044…`, and the
  international dialling prefix of the PBX's region (`011 44…` from the US).
- Anything else is a national number read in the PBX's region, `[pbx] default_region`
  (`07700 900123` in GB, `(555) 123-0001` or `1 555 123 0001` in the US). The region always
  comes from configuration: callers pass `config.pbx.default_region`, never a literal.
- The PBX hands over caller IDs and dialled numbers in the same region's plan, so both follow
  this rule; the bridge configures no outbound (line-access) prefix, so none is stripped.

A number becomes E.164 when `phonenumbers` finds it valid, or when it has a known country
code and exactly the right length for that country's plan ("possible"): number plans change
faster than the library's metadata, and fictional ranges such as NANP `555` (used by labs and
the recorded traces) are well-formed but never "valid". Everything else, `anonymous`,
`<unknown>`, letters, control characters, oversized input, is None, so routing treats the
caller as unknown. Parsing costs ~40 µs and the same few numbers repeat (a call's caller ID
is read by routing, the pop, the record), so results are cached, bounded.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

__all__ = ["MAX_INPUT", "to_e164"]

# Longest real input: "+" and 15 digits plus generous punctuation/spacing ("+1 (555) 123-0001").
MAX_INPUT = 64
# Distinct (number, region) pairs remembered; each entry is well under 1 KB.
CACHE_SIZE = 4096

_ANONYMOUS = frozenset(
    {"", "anonymous", "unknown", "<unknown>", "unavailable", "private", "restricted", "withheld"}
)
# Characters a dialled/caller number may contain; anything else means it is not a number.
_ALLOWED = re.compile(r"[0-9+()\-. /]+")


def to_e164(raw: str, region: str) -> str | None:
    """E.164 (`+15551230001`) for a usable number, national ones read in `region`
    (`[pbx] default_region`), else None. Never raises on bad input."""
    if not isinstance(raw, str) or len(raw) > MAX_INPUT:
        return None
    return _parse(raw, region.upper() if isinstance(region, str) else "")


@lru_cache(maxsize=CACHE_SIZE)
def _parse(raw: str, region: str) -> str | None:
    text = raw.strip(" ")
    if text.lower() in _ANONYMOUS or not _ALLOWED.fullmatch(text):
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
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
