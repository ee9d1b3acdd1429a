from __future__ import annotations

import pytest

from bridge.crm.agents import Agent
from bridge.pops.card import CustomerCard
from bridge.pops.permissions import visible_card

CARD = CustomerCard(
    id="c-1",
    name="Alice",
    tags=("vip",),
    attributes={"lifetime_value": 12000},
    orders=({"product": "Phone"},),
    contracts=({"kind": "loan", "progress_pct": 30},),
    marketing=({"campaign": "spring"},),
    history=({"summary": "broken screen", "disposition": "resolved"},),
    last_outcome={"disposition": "resolved"},
)
DETAILS = {"attributes", "orders", "contracts", "marketing", "history"}


@pytest.mark.parametrize(
    ("role", "viewer", "owner", "full"),
    [
        ("agent", "a1", None, True),  # nobody owns the customer
        ("agent", "a1", "a1", True),  # the agent owns it
        ("agent", "a1", "a2", False),  # another agent owns it
        ("supervisor", "s1", "a2", True),
        ("supervisor", "s1", None, True),
        ("admin", "x1", "a2", True),
        ("agent", "a1", "A1", False),  # ids are exact, not case-folded
    ],
)
def test_card_visibility(role: str, viewer: str, owner: str | None, full: bool) -> None:
    card = CustomerCard(**{**{f: getattr(CARD, f) for f in CARD.__slots__}, "owner": owner})
    seen = visible_card(Agent(viewer, "V", role, "100"), card)  # type: ignore[arg-type]
    assert seen is not None
    assert seen["id"] == "c-1" and seen["name"] == "Alice" and seen["tags"] == ["vip"]
    assert seen["last_outcome"] == {"disposition": "resolved"}
    assert seen["restricted"] is (not full)
    if full:
        assert seen.keys() >= DETAILS
        assert seen["contracts"][0]["progress_pct"] == 30
    else:
        assert not (seen.keys() & DETAILS)
        assert "owner" not in seen


def test_unknown_caller_has_no_card() -> None:
    assert visible_card(Agent("a1", "A", "agent", "1"), None) is None


def test_the_full_card_is_a_copy() -> None:
    seen = visible_card(Agent("a1", "A", "agent", "1"), CARD)
    assert seen is not None
    seen["attributes"]["lifetime_value"] = 0
    assert CARD.attributes["lifetime_value"] == 12000
