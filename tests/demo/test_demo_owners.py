"""The demo's owners are realistic: most pops show the whole card under the default policy."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bridge.crm.agents import Agent
from bridge.demo.data import AGENTS, QUEUES, RULES, customers, demo_queue
from bridge.models import Customer, CustomerCard, InboundCall
from bridge.pops.permissions import DEFAULT_POLICY, visible_card
from bridge.routing.decide import decide
from bridge.routing.rules import Rule, parse_attr

MEMBERS = {name: members for name, _, members in QUEUES}
BY_DEVICE = {a.device: Agent(a.id, a.name, a.role, a.device) for a in AGENTS}  # type: ignore[arg-type]


def _rules() -> list[Rule]:
    return [
        Rule(
            name=spec.name,
            position=n,
            queue=spec.queue,
            priority=spec.priority,
            tags_any=spec.tags_any,
            unknown_caller=spec.unknown_caller,
            caller_prefix=spec.caller_prefix,
            attr=parse_attr(spec.attr) if spec.attr else None,
        )
        for n, spec in enumerate(RULES, 1)
    ]


def test_demo_queue_is_what_the_demo_rules_decide() -> None:
    rules = _rules()
    for c in customers():
        call = InboundCall(c.phones[0], c.phones[0], "", "", datetime(2026, 11, 2, tzinfo=UTC))
        customer = Customer(c.id, c.name, tuple(c.tags), c.attributes, c.owner)
        decision = decide(call, customer, rules, default_queue="support", tz=ZoneInfo("UTC"))
        assert decision.queue == demo_queue(c.phones, c.tags, c.attributes), c.id


def test_owners_are_account_managers_in_their_customers_queue() -> None:
    for c in customers():
        if c.attributes["segment"] != "business":
            assert c.owner is None, c.id
        else:
            assert c.owner in MEMBERS[demo_queue(c.phones, c.tags, c.attributes)], c.id


def test_most_pops_show_the_whole_card() -> None:
    shown = hidden = 0
    for c in customers():
        card = CustomerCard(c.id, c.name, tuple(c.tags), c.owner, c.attributes)
        for device in MEMBERS[demo_queue(c.phones, c.tags, c.attributes)]:
            seen = visible_card(BY_DEVICE[device], card, DEFAULT_POLICY)
            assert seen is not None
            if seen["restricted"]:
                hidden += 1
            else:
                shown += 1
    assert hidden / (shown + hidden) < 0.25, (shown, hidden)
    assert hidden > 0, "the demo still shows what a restricted card looks like"
