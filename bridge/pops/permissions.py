"""What of a customer card an agent may see. Pure: no I/O.

    viewer role        customer owner            sees
    supervisor/admin   anyone or nobody          the full card
    agent              nobody                    the full card
    agent              this agent                the full card
    agent              another agent             id, name, tags, last outcome only

The full card is: id, name, tags, owner, attributes, recent orders, contracts (with their
progress), marketing history and recent service history, plus the last outcome. A reduced
card says `"restricted": true` so the page can tell the agent why details are missing.
"""

from __future__ import annotations

from typing import Any, Protocol

from bridge.pops.card import CustomerCard

__all__ = ["FULL_ROLES", "Viewer", "may_see_full", "visible_card"]

FULL_ROLES = frozenset({"supervisor", "admin"})


class Viewer(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def role(self) -> str: ...


def may_see_full(viewer: Viewer, owner: str | None) -> bool:
    if viewer.role in FULL_ROLES:
        return True
    return owner is None or owner == viewer.id


def visible_card(viewer: Viewer, card: CustomerCard | None) -> dict[str, Any] | None:
    """The `customer` value of a pop for this viewer (None for an unknown caller)."""
    if card is None:
        return None
    if not may_see_full(viewer, card.owner):
        return restricted_card(card)
    return full_card(card)


def full_card(card: CustomerCard) -> dict[str, Any]:
    return {
        "id": card.id,
        "name": card.name,
        "tags": list(card.tags),
        "owner": card.owner,
        "restricted": False,
        "attributes": dict(card.attributes),
        "orders": [dict(r) for r in card.orders],
        "contracts": [dict(r) for r in card.contracts],
        "marketing": [dict(r) for r in card.marketing],
        "history": [dict(r) for r in card.history],
        "last_outcome": None if card.last_outcome is None else dict(card.last_outcome),
    }


def restricted_card(card: CustomerCard) -> dict[str, Any]:
    return {
        "id": card.id,
        "name": card.name,
        "tags": list(card.tags),
        "restricted": True,
        "last_outcome": None if card.last_outcome is None else dict(card.last_outcome),
    }
