"""Caller ID normalisation: E.164 for real numbers, None for everything else."""

from __future__ import annotations

import pytest

from bridge.crm.phones import normalise


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+15551230001", "US", "+15551230001"),  # the traces' fictional 555 numbers
        ("+1 555 123 0001", "US", "+15551230001"),
        ("(555) 123-0001", "US", "+15551230001"),
        ("555.123.0001", "US", "+15551230001"),
        ("15551230001", "US", "+15551230001"),
        (" +15551230002 ", "US", "+15551230002"),
        ("+8613800138000", "US", "+8613800138000"),
        ("008613800138000", "US", "+8613800138000"),
        ("13800138000", "CN", "+8613800138000"),
        ("+442071838750", "US", "+442071838750"),
        ("020 7183 8750", "GB", "+442071838750"),
        ("+44 20 7946 0958", "cn", "+442079460958"),
        ("2015550123", "US", "+12015550123"),
        ("5551230001", "ZZ", None),  # no region, no country code
        ("5551230001", "", None),
        ("+15551230001", "", "+15551230001"),
        ("anonymous", "US", None),
        ("Anonymous", "US", None),
        ("unknown", "US", None),
        ("<unknown>", "US", None),
        ("Restricted", "US", None),
        ("", "US", None),
        ("   ", "US", None),
        ("12345", "US", None),  # too short
        ("+1234", "US", None),
        ("+999123456789", "US", None),  # no such country code
        ("+1555123000112345", "US", None),  # too long
        ("abc", "US", None),
        ("555-CALL-NOW", "US", None),  # letters are not digits
        ("+15551230001\r\nAction: Originate", "US", None),
        ("+15551230001\n", "US", None),
        ("+1555\x001230001", "US", None),
        ("+15551230001'; DROP TABLE customers;--", "US", None),
        ("<script>alert(1)</script>", "US", None),
        ("١٢٣٤٥٦٧٨٩٠", "US", None),  # non-ASCII digits
        ("+" + "1" * 10_000, "US", None),  # huge input is refused before parsing
        ("9" * 1_000_000, "US", None),
        ("\udcff\udcfe", "US", None),  # undecodable bytes kept as surrogates
    ],
)
def test_normalise(raw: str, region: str, expected: str | None) -> None:
    assert normalise(raw, region) == expected


@pytest.mark.parametrize("raw", [None, 15551230001, b"+15551230001"])
def test_normalise_non_text_is_none(raw: object) -> None:
    assert normalise(raw, "US") is None  # type: ignore[arg-type]
