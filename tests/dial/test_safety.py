"""Which numbers a click-to-call may dial: the hostile table, then the plain ones."""

from __future__ import annotations

import phonenumbers
import pytest

from bridge.dial.safety import NumberRefused, check_number


def _example(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("15551230002\r\nAction: Originate", "only digits"),
        ("15551230002\nApplication: System", "only digits"),
        ("1555123\x000002", "only digits"),
        ("1234,Application,System", "only digits"),
        ("*", "only digits"),
        ("*97", "only digits"),
        ("#1001", "only digits"),
        ("5551230002;ext=1", "only digits"),
        ("555-CALL-NOW", "only digits"),
        ("abc", "only digits"),
        ("Local/1001@phones", "only digits"),
        ("PJSIP/trunk/sip:x@evil", "only digits"),
        ("${SHELL(id)}", "only digits"),
        ("'; DROP TABLE agents; --", "only digits"),
        ("<b>5551230002</b>", "only digits"),
        ("１５５５１２３０００２", "only digits"),  # full-width digits
        ("1" * 33, "longer than"),
        ("+1 555 123 0002 +1", "'+' may only start"),
        ("", "empty"),
        ("   ", "empty"),
        ("+123", "not a dialable number"),
        ("12", "not a dialable number"),
        ("+999 1234 5678", "not a phone number"),
        ("+1 900 555 0100", "premium-rate"),
        (_example("GB", phonenumbers.PhoneNumberType.PREMIUM_RATE), "premium-rate"),
        (_example("FR", phonenumbers.PhoneNumberType.SHARED_COST), "shared-cost"),
        (None, "must be text"),
        (15551230002, "must be text"),
        (["+15551230002"], "must be text"),
    ],
)
def test_hostile_and_costly_numbers_are_refused_with_a_reason(raw: object, reason: str) -> None:
    with pytest.raises(NumberRefused) as refused:
        check_number(raw, region="US")
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("raw", "e164", "digits"),
    [
        ("+1 555 123 0002", "+15551230002", "15551230002"),
        ("(555) 123-0002", "+15551230002", "15551230002"),
        ("555.123.0002", "+15551230002", "15551230002"),
        ("1 800 555 0100", "+18005550100", "18005550100"),
        ("0044 20 7946 0000", "+442079460000", "011442079460000"),
        ("+86 138 0013 8000", "+8613800138000", "0118613800138000"),
    ],
)
def test_dialable_numbers_become_digits_as_the_pbx_region_dials_them(
    raw: str, e164: str, digits: str
) -> None:
    target = check_number(raw, region="US")
    assert (target.e164, target.digits) == (e164, digits)


def test_allow_prefixes_limit_where_a_dial_may_go() -> None:
    assert check_number("+1 555 123 0002", region="US", allow=["+1"]).e164 == "+15551230002"
    with pytest.raises(NumberRefused, match="allow"):
        check_number("+86 138 0013 8000", region="US", allow=["+1", "+44"])


def test_a_national_number_is_read_and_dialled_in_the_default_region() -> None:
    target = check_number("020 7946 0000", region="GB")
    assert (target.e164, target.digits) == ("+442079460000", "02079460000")
    assert check_number("+1 555 123 0002", region="GB").digits == "0015551230002"
