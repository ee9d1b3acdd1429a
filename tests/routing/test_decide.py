"""decide(): first enabled matching rule in position order, else the default queue."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bridge.models import Customer, Decision, InboundCall
from bridge.routing.decide import decide
from bridge.routing.rules import Rule, make_rule

UTC_TZ = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_NOON_UTC = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SATURDAY_NOON_UTC = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

ALICE = Customer("c-alice", "Alice Chen", ("vip",), {"lifetime_value": 20000})
BOB = Customer("c-bob", "Bob Li", (), {"lifetime_value": "150", "tier": "silver"})
ZHANG = Customer("c-zhang", "张伟", ("vip", "complaint-risk"), {})
CAROL = Customer("c-carol", "Carol", ("gold", "b2b"), {"tier": "gold"})


def call(
    caller: str | None = "+15551230001", did: str = "18005550100", at: datetime = MONDAY_NOON_UTC
) -> InboundCall:
    return InboundCall(caller or "anonymous", caller, "", did, at)


RULES: list[Rule] = [
    make_rule("complaints", "care", position=1, priority=9, tags_all="vip,complaint-risk"),
    make_rule("vip", "senior", position=2, priority=5, tags_any="vip,gold"),
    make_rule("sales-line", "sales", position=3, did="18005550199"),
    make_rule("china", "cn", position=4, caller_prefix="+86"),
    make_rule("weekend", "weekend", position=5, when="sat,sun"),
    make_rule("big", "key-accounts", position=6, attr="lifetime_value>=100"),
    make_rule("strangers", "triage", position=7, unknown_caller=True),
    make_rule("off", "nowhere", position=0, enabled=False),  # first, but disabled
]


@pytest.mark.parametrize(
    ("the_call", "customer", "expected"),
    [
        (call(), ALICE, ("senior", 5, "vip")),
        (call("+8613800138000"), ZHANG, ("care", 9, "complaints")),
        (call(), CAROL, ("senior", 5, "vip")),
        (call("+15551230002"), BOB, ("key-accounts", 0, "big")),
        (call("+15551230002", did="18005550199"), BOB, ("sales", 0, "sales-line")),
        (call("+15551230002", did="18005550199"), ALICE, ("senior", 5, "vip")),
        (call("+8613911112222"), None, ("cn", 0, "china")),
        (call("+8613911112222", did="18005550199"), None, ("sales", 0, "sales-line")),
        (call("+15551239999"), None, ("triage", 0, "strangers")),
        (call(None), None, ("triage", 0, "strangers")),
        (call(None, at=SATURDAY_NOON_UTC), None, ("weekend", 0, "weekend")),
        (call("+15551230002", at=SATURDAY_NOON_UTC), BOB, ("weekend", 0, "weekend")),
        (call("+18613800138000"), None, ("triage", 0, "strangers")),  # +1 861..., not +86
    ],
)
def test_decide_table(
    the_call: InboundCall, customer: Customer | None, expected: tuple[str, int, str]
) -> None:
    decision = decide(the_call, customer, RULES, default_queue="support", tz=UTC_TZ)
    assert (decision.queue, decision.priority, decision.rule) == expected
    assert decision.customer is customer and decision.degraded is False


@pytest.mark.parametrize(
    ("rules", "customer", "expected_rule"),
    [
        ([], ALICE, "default"),
        ([make_rule("gold", "g", tags_any="gold")], ALICE, "default"),
        ([make_rule("vip", "s", tags_any="vip")], None, "default"),  # tags need a customer
        ([make_rule("both", "s", tags_all="vip,gold")], ALICE, "default"),
        ([make_rule("both", "s", tags_all="vip,gold")], CAROL, "default"),
        ([make_rule("both", "s", tags_all="gold,b2b")], CAROL, "both"),
        ([make_rule("rich", "s", attr="lifetime_value>=100")], None, "default"),
        ([make_rule("rich", "s", attr="lifetime_value>=100")], ZHANG, "default"),  # missing
        ([make_rule("silver", "s", attr="tier=silver")], BOB, "silver"),
        ([make_rule("notgold", "s", attr="tier!=gold")], BOB, "notgold"),
        ([make_rule("notgold", "s", attr="tier!=gold")], ALICE, "default"),  # missing attr
        ([make_rule("unknown", "s", unknown_caller=True)], ALICE, "default"),
        ([make_rule("catchall", "s")], None, "catchall"),
        # AND of conditions: every one must hold
        ([make_rule("and", "s", tags_any="vip", caller_prefix="+86")], ALICE, "default"),
        ([make_rule("and", "s", tags_any="vip", caller_prefix="+1")], ALICE, "and"),
        ([make_rule("and", "s", tags_any="vip", did="1")], ALICE, "default"),
        # position order, then name; the list order does not matter
        ([make_rule("b", "s", position=2), make_rule("a", "s", position=3)], None, "b"),
        ([make_rule("z", "s", position=1), make_rule("a", "s", position=1)], None, "a"),
        (
            [make_rule("x", "s", position=5, enabled=False), make_rule("y", "s", position=6)],
            None,
            "y",
        ),
    ],
)
def test_decide_conditions(
    rules: list[Rule], customer: Customer | None, expected_rule: str
) -> None:
    assert decide(call(), customer, rules, default_queue="support", tz=UTC_TZ).rule == expected_rule


def test_default_decision_carries_customer_and_default_priority() -> None:
    decision = decide(call(), BOB, [], default_queue="support", default_priority=3, tz=UTC_TZ)
    assert decision == Decision("support", 3, "default", BOB, False)


@pytest.mark.parametrize(
    ("at", "tz", "expected_rule"),
    [
        # 02:00 UTC Monday = 10:00 Monday in Shanghai: inside office hours there only.
        (datetime(2026, 11, 23, 2, 0, tzinfo=UTC), SHANGHAI, "office"),
        (datetime(2026, 11, 23, 2, 0, tzinfo=UTC), UTC_TZ, "default"),
        # 17:00 UTC Friday = 01:00 Saturday in Shanghai: outside mon-fri there.
        (datetime(2026, 11, 27, 17, 0, tzinfo=UTC), SHANGHAI, "default"),
        (datetime(2026, 11, 27, 17, 0, tzinfo=UTC), UTC_TZ, "office"),
        # The call's own offset does not matter, only the instant.
        (datetime.fromisoformat("2026-11-23T10:00:00+08:00"), SHANGHAI, "office"),
    ],
)
def test_time_window_is_evaluated_in_the_rules_zone(
    at: datetime, tz: ZoneInfo, expected_rule: str
) -> None:
    rules = [make_rule("office", "office", when="mon-fri 09:00-18:00")]
    assert decide(call(at=at), None, rules, default_queue="support", tz=tz).rule == expected_rule


def test_dst_change_uses_local_wall_clock() -> None:
    new_york = ZoneInfo("America/New_York")
    rules = [make_rule("morning", "m", when="09:00-10:00")]
    summer = datetime(2026, 7, 6, 13, 30, tzinfo=UTC)  # 09:30 EDT
    winter = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)  # 09:30 EST
    for at in (summer, winter):
        assert decide(call(at=at), None, rules, default_queue="s", tz=new_york).rule == "morning"


def test_hostile_did_and_caller_never_match_by_accident() -> None:
    rules = [
        make_rule("sales", "sales", did="18005550199"),
        make_rule("cn", "cn", caller_prefix="+86"),
    ]
    weird = InboundCall("x", None, "", "18005550199\r\n", MONDAY_NOON_UTC)
    assert decide(weird, None, rules, default_queue="support", tz=UTC_TZ).rule == "default"


def test_naive_call_time_is_taken_as_utc() -> None:
    rules = [make_rule("office", "office", when="mon-fri 09:00-18:00")]
    naive = call(at=datetime(2026, 11, 23, 2, 0))  # 10:00 in Shanghai if read as UTC
    assert decide(naive, None, rules, default_queue="s", tz=SHANGHAI).rule == "office"
