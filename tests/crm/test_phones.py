"""A caller ID or dialled number → E.164 for real numbers, None for everything else."""

from __future__ import annotations

import pytest

from bridge.crm import phones
from bridge.crm.phones import to_e164


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
def test_to_e164(raw: str, region: str, expected: str | None) -> None:
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize("raw", [None, 15551230001, b"+15551230001"])
def test_non_text_is_none(raw: object) -> None:
    assert to_e164(raw, "US") is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # international forms keep their country code, whatever the region
        ("+44 7700 900123", "US", "+447700900123"),
        ("0044 7700 900123", "US", "+447700900123"),
        ("+1 555 123 0001", "GB", "+15551230001"),
        # the region's own international dialling prefix, as a phone there dials abroad
        ("011 44 20 7946 0958", "US", "+442079460958"),
        ("00 1 555 123 0001", "GB", "+15551230001"),
        # national numbers are read in the configured region, with or without trunk prefix
        ("07700 900123", "GB", "+447700900123"),
        ("447700900123", "GB", "+447700900123"),  # a trunk's country code without +
        ("(555) 123-0001", "US", "+15551230001"),
        ("1 555 123 0001", "US", "+15551230001"),
        ("0118613800138000", "US", "+8613800138000"),  # what check_number dials from the US
        ("02079460000", "GB", "+442079460000"),  # what check_number dials from the UK
    ],
)
def test_international_and_national_forms(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region) == expected


def test_the_same_national_number_depends_on_the_region() -> None:
    assert to_e164("07700 900123", "GB") == "+447700900123"
    assert to_e164("07700 900123", "gb") == "+447700900123"
    assert to_e164("07700 900123", "US") is None  # not a US number
    assert to_e164("07700 900123", "") is None  # no region: national numbers cannot parse


@pytest.mark.parametrize(
    "raw",
    [
        "07700 900123\r\n",
        "\r\nAction: Hangup",
        "07700\n900123",
        "07700\x00900123",
        "\x00",
        "07700 9001TW",
        "+44 7700 900123 ext. 5",
        "0" * 10_240,  # 10 KB
        "+44" + "7" * 10_240,
        "+",
        "--",
        "()",
        "0",
    ],
)
def test_hostile_or_invalid_input_is_none(raw: str) -> None:
    assert to_e164(raw, "GB") is None


@pytest.mark.parametrize("region", [None, 44, ["GB"], "G\x00B", "X" * 10_000])
def test_an_unusable_region_reads_international_numbers_only(region: object) -> None:
    assert to_e164("+447700900123", region) == "+447700900123"  # type: ignore[arg-type]
    assert to_e164("07700 900123", region) is None  # type: ignore[arg-type]


def test_results_are_cached_and_the_cache_is_bounded() -> None:
    phones._parse.cache_clear()
    assert to_e164("07700 900123", "GB") == to_e164("07700 900123", "GB") == "+447700900123"
    assert phones._parse.cache_info().hits == 1
    for n in range(phones.CACHE_SIZE + 50):
        to_e164(f"+4420{n:08d}", "GB")
    info = phones._parse.cache_info()
    assert info.maxsize == phones.CACHE_SIZE and info.currsize == phones.CACHE_SIZE
