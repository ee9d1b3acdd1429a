"""The routing decision: pure, no I/O, tested by tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bridge.models import Customer, Decision, InboundCall
from bridge.routing.rules import Rule


def _aware(at: datetime) -> datetime:
    """Calls should carry aware times; a naive one is taken as UTC, not as this host's zone."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def rule_matches(rule: Rule, call: InboundCall, customer: Customer | None, tz: ZoneInfo) -> bool:
    """Whether every condition of `rule` holds for this call (AND; no conditions = match)."""
    if rule.tags_any and (customer is None or not set(rule.tags_any) & set(customer.tags)):
        return False
    if rule.tags_all and (customer is None or not set(rule.tags_all) <= set(customer.tags)):
        return False
    if rule.unknown_caller and customer is not None:
        return False
    if rule.caller_prefix and not (call.caller or "").startswith(rule.caller_prefix):
        return False
    if rule.did and call.did != rule.did:
        return False
    if rule.when and not rule.when.contains(_aware(call.at).astimezone(tz)):
        return False
    return not (rule.attr and (customer is None or not rule.attr.matches(customer.attributes)))


def decide(
    call: InboundCall,
    customer: Customer | None,
    rules: Sequence[Rule],
    *,
    default_queue: str,
    default_priority: int = 0,
    tz: ZoneInfo,
) -> Decision:
    """First enabled rule in position order (then name) whose conditions all hold, else the
    default queue with rule name "default"."""
    for rule in sorted(rules, key=lambda r: (r.position, r.name)):
        if rule.enabled and rule_matches(rule, call, customer, tz):
            return Decision(rule.queue, rule.priority, rule.name, customer)
    return Decision(default_queue, default_priority, "default", customer)
