"""`--when` and `--attr` spec parsing and evaluation, and rule validation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from bridge.errors import ValidationError
from bridge.routing.rules import make_rule, parse_attr, parse_tags, parse_when

# 2026-11-23 is a Monday.
MON, TUE, FRI, SAT, SUN = 23, 24, 27, 28, 29


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm)


@pytest.mark.parametrize(
    ("spec", "moment", "inside"),
    [
        ("mon-fri 09:00-18:00", at(MON, 9), True),
        ("mon-fri 09:00-18:00", at(MON, 8, 59), False),
        ("mon-fri 09:00-18:00", at(FRI, 17, 59), True),
        ("mon-fri 09:00-18:00", at(FRI, 18), False),  # end is exclusive
        ("mon-fri 09:00-18:00", at(SAT, 12), False),
        ("sat,sun 10:00-14:00", at(SAT, 10), True),
        ("sat,sun 10:00-14:00", at(SUN, 13, 59), True),
        ("sat,sun 10:00-14:00", at(MON, 12), False),
        ("mon-fri", at(TUE, 0), True),
        ("mon-fri", at(SUN, 12), False),
        ("Saturday,sunday", at(SUN, 23, 59), True),
        ("fri-mon", at(SUN, 3), True),  # a range may wrap the week
        ("fri-mon", at(TUE, 3), False),
        ("22:00-06:00", at(TUE, 23), True),  # every day, overnight
        ("22:00-06:00", at(TUE, 5, 59), True),
        ("22:00-06:00", at(TUE, 6), False),
        ("22:00-06:00", at(TUE, 12), False),
        ("fri 22:00-06:00", at(FRI, 23), True),
        ("fri 22:00-06:00", at(SAT, 2), True),  # after midnight belongs to Friday's night
        ("fri 22:00-06:00", at(FRI, 2), False),  # ... and Friday 02:00 to Thursday's
        ("mon-fri 22:00-06:00", at(MON, 2), False),  # Sunday night is not in mon-fri
        ("mon-fri 22:00-06:00", at(SAT, 5), True),
        ("18:00-24:00", at(SUN, 23, 59), True),
        ("18:00-24:00", at(SUN, 17, 59), False),
        ("00:00-01:00", at(SUN, 0, 30), True),
        ("9:30-10:00", at(MON, 9, 45), True),
    ],
)
def test_when_window(spec: str, moment: datetime, inside: bool) -> None:
    assert parse_when(spec).contains(moment) is inside


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("mon-fri 09:00-18:00", "mon-fri 09:00-18:00"),
        ("sat,sun 10:00-14:00", "sat,sun 10:00-14:00"),
        ("MON,tue,wed", "mon-wed"),
        ("22:00-06:00", "22:00-06:00"),
        ("  mon-fri   ", "mon-fri"),
        ("fri-mon 9:00-17:30", "mon,fri-sun 09:00-17:30"),
    ],
)
def test_when_canonical_text_round_trips(spec: str, canonical: str) -> None:
    window = parse_when(spec)
    assert str(window) == canonical
    assert parse_when(str(window)) == window


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "someday",
        "mon-",
        "mon,,tue",
        "mon-fri 25:00-26:00",
        "mon-fri 09:60-10:00",
        "mon-fri 09:00",
        "mon-fri 09:00-09:00",
        "00:00-24:00",
        "24:00-06:00",
        "09:00-18:00 mon-fri",
        "mon-fri 09:00-12:00 13:00-18:00",
        "mon-fri 9-18",
        "mon-fri\n09:00-18:00; DROP TABLE x",
        "x" * 1000,
    ],
)
def test_bad_when_specs_name_the_field(spec: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_when(spec)
    assert exc.value.field == "when"


@pytest.mark.parametrize(
    ("spec", "attributes", "matches"),
    [
        ("lifetime_value>=10000", {"lifetime_value": 10000}, True),
        ("lifetime_value>=10000", {"lifetime_value": 9999.5}, False),
        ("lifetime_value>=10000", {"lifetime_value": "12000"}, True),  # numeric text
        ("lifetime_value>=10000", {}, False),  # missing never matches
        ("lifetime_value>=10000", {"lifetime_value": "lots"}, False),
        ("lifetime_value>=10000", {"lifetime_value": None}, False),
        ("lifetime_value>=10000", {"lifetime_value": True}, False),  # bools are not numbers
        ("score<=3", {"score": 3}, True),
        ("score<3", {"score": 3}, False),
        ("score>3", {"score": 3.01}, True),
        ("score=3", {"score": 3.0}, True),
        ("score=3", {"score": "3.0"}, True),
        ("score!=3", {"score": 4}, True),
        ("score!=3", {}, False),
        ("tier=gold", {"tier": "gold"}, True),
        ("tier = gold", {"tier": "gold"}, True),
        ("tier=gold", {"tier": "Gold"}, False),
        ("tier!=gold", {"tier": "silver"}, True),
        ("tier=gold", {"tier": ["gold"]}, False),
        ("churned=true", {"churned": True}, True),
        ("name=张伟", {"name": "张伟"}, True),
        ("zip=00123", {"zip": "00123"}, True),
        ("zip=00123", {"zip": 123}, True),  # both numeric: compared as numbers
        ("note=", {"note": ""}, True),
        ("x>=1e3", {"x": 1000}, True),
    ],
)
def test_attr_condition(spec: str, attributes: dict[str, object], matches: bool) -> None:
    assert parse_attr(spec).matches(attributes) is matches


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "lifetime_value",
        ">=10",
        "ltv>>1",
        "ltv=>1",
        "ltv>=",
        "ltv>=lots",
        "ltv>=nan",
        "ltv>=inf",
        "bad key>=1",
        "ltv=1\r\nx",
        "ltv=\x00",
        "k=" + "v" * 500,
    ],
)
def test_bad_attr_specs_name_the_field(spec: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_attr(spec)
    assert exc.value.field == "attr"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "", "queue": "q"}, "name"),
        ({"name": "default", "queue": "q"}, "name"),
        ({"name": "a b", "queue": "q"}, "name"),
        ({"name": "x" * 81, "queue": "q"}, "name"),
        ({"name": "r", "queue": ""}, "queue"),
        ({"name": "r", "queue": "q\r\nHangup"}, "queue"),
        ({"name": "r", "queue": "q", "priority": 10**9}, "priority"),
        ({"name": "r", "queue": "q", "priority": True}, "priority"),
        ({"name": "r", "queue": "q", "position": -1}, "position"),
        ({"name": "r", "queue": "q", "caller_prefix": "86"}, "prefix"),
        ({"name": "r", "queue": "q", "caller_prefix": "+86a"}, "prefix"),
        ({"name": "r", "queue": "q", "did": "1800 555"}, "did"),
        ({"name": "r", "queue": "q", "tags_any": "vip,<b>"}, "tags_any"),
        ({"name": "r", "queue": "q", "tags_all": ["ok", "x" * 65]}, "tags_all"),
        ({"name": "r", "queue": "q", "when": "never"}, "when"),
        ({"name": "r", "queue": "q", "attr": "x~1"}, "attr"),
    ],
)
def test_make_rule_rejects_bad_fields(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        make_rule(**kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_make_rule_normalises_optional_conditions() -> None:
    rule = make_rule(
        "vip", "senior", tags_any=" vip, gold ,vip,", caller_prefix="", did="", when=" ", attr=""
    )
    assert rule.tags_any == ("vip", "gold")
    assert (rule.caller_prefix, rule.did, rule.when, rule.attr) == (None, None, None, None)
    assert rule.describe() == "--tags-any vip,gold"
    assert make_rule("all", "q").describe() == "(always)"


def test_parse_tags_limits() -> None:
    assert parse_tags(None) == ()
    assert parse_tags("a;b".replace(";", ",")) == ("a", "b")
    with pytest.raises(ValidationError):
        parse_tags(",".join(f"t{i}" for i in range(51)))


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("mon-fri 09:00-18:00, sat 10:00-12:00", "mon-fri 09:00-18:00, sat 10:00-12:00"),
        ("mon-fri 09:00-12:00;mon-fri 13:00-18:00", "mon-fri 09:00-12:00, mon-fri 13:00-18:00"),
        ("sat,sun 10:00-14:00 , mon 08:00-09:00", "sat,sun 10:00-14:00, mon 08:00-09:00"),
        ("mon 09:00-10:00, mon 09:00-10:00", "mon 09:00-10:00"),  # a repeat counts once
    ],
)
def test_several_when_windows_round_trip(spec: str, canonical: str) -> None:
    schedule = parse_when(spec)
    assert str(schedule) == canonical
    assert parse_when(str(schedule)) == schedule


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (datetime(2026, 11, 2, 9, 30), True),  # Monday morning
        (datetime(2026, 11, 2, 12, 30), False),  # Monday lunch
        (datetime(2026, 11, 2, 13, 0), True),
        (datetime(2026, 11, 7, 11, 0), True),  # Saturday
        (datetime(2026, 11, 7, 12, 0), False),
        (datetime(2026, 11, 8, 11, 0), False),  # Sunday
    ],
)
def test_a_call_inside_any_window_matches(moment: datetime, inside: bool) -> None:
    schedule = parse_when("mon-fri 09:00-12:00, mon-fri 13:00-18:00, sat 10:00-12:00")
    assert schedule.contains(moment) is inside


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mon-fri 09:00-18:00, sat 25:00-12:00", "window 2 ('sat 25:00-12:00'): 25:00 is not"),
        ("mon-fri 09:00-18:00, ", "window 2 (''): an empty window"),
        ("mon-fri 09:00-18:00; someday", "window 2 ('someday'): unknown day 'someday'"),
        ("mon-fri 09:00-12:00 13:00-18:00", "separate several windows with a comma"),
        (";".join(["mon"] * 11), "at most 10 windows"),
    ],
)
def test_a_wrong_window_is_named(spec: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_when(spec)
    assert exc.value.field == "when" and message in exc.value.reason


@pytest.mark.parametrize(
    ("kwargs", "catch_all"),
    [
        ({}, True),
        ({"tags_any": ""}, True),
        ({"tags_any": " , "}, True),
        ({"when": "mon-sun"}, True),
        ({"when": "mon-fri, sat,sun"}, True),
        ({"when": "mon-fri 09:00-18:00, mon-sun"}, True),
        ({"when": "mon-fri"}, False),
        ({"when": "mon-sun 00:00-23:59"}, False),
        ({"tags_any": "vip"}, False),
        ({"unknown_caller": True}, False),
        ({"caller_prefix": "+86"}, False),
        ({"did": "100"}, False),
        ({"attr": "x=1"}, False),
    ],
)
def test_a_rule_every_call_meets_is_a_catch_all(kwargs: dict[str, Any], catch_all: bool) -> None:
    assert make_rule("r", "q", **kwargs).catch_all is catch_all
