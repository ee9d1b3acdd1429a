"""What of a customer card an agent may see. Pure: no I/O.

    viewer role        customer owner            sees
    supervisor/admin   anyone or nobody          the full card
    agent              nobody                    the full card
    agent              this agent                the full card
    agent              another agent             id, name, tags, last outcome, plus what
                                                 `[permissions]` grants non-owners

The full card is: id, name, tags, owner, attributes, recent orders, contracts (with their
progress), marketing history and recent service history, plus the last outcome. A reduced
card says `"restricted": true` so the page can tell the agent why details are missing.

The policy (`CardPolicy`, from `[permissions]`) names the sections a non-owner agent sees
besides the identity: whole sections (`orders`, `contracts`, `marketing`, `history`,
`attributes`) and single attributes by name. The default grants nothing more, which is the
behaviour before the policy existed. Owners, supervisors and admins always see everything:
the policy narrows what colleagues see of someone else's customer, never the owner's view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.config import CARD_SECTIONS, PermissionsConfig
from bridge.models import CustomerCard

__all__ = [
    "DEFAULT_POLICY",
    "FULL_ROLES",
    "SECTIONS",
    "CardPolicy",
    "Viewer",
    "may_see_full",
    "policy_from_config",
    "sections_shown",
    "visible_card",
]

FULL_ROLES = frozenset({"supervisor", "admin"})
# The card sections a policy may grant to non-owners ("attributes" = every attribute).
SECTIONS = CARD_SECTIONS
_LISTS = ("orders", "contracts", "marketing", "history")


@dataclass(frozen=True, slots=True)
class CardPolicy:
    """What a non-owner agent sees beyond id, name, tags and last outcome."""

    non_owner_sections: frozenset[str] = frozenset()
    non_owner_attributes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.non_owner_sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown card sections {sorted(unknown)}; known: {SECTIONS}")

    @classmethod
    def of(cls, sections: Iterable[str] = (), attributes: Iterable[str] = ()) -> CardPolicy:
        return cls(frozenset(sections), frozenset(attributes))


DEFAULT_POLICY = CardPolicy()


def policy_from_config(permissions: PermissionsConfig) -> CardPolicy:
    """The `[permissions]` section as a policy (the config loader already checked it)."""
    return CardPolicy.of(permissions.non_owner_sections, permissions.non_owner_attributes)


class Viewer(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def role(self) -> str: ...


def may_see_full(viewer: Viewer, owner: str | None) -> bool:
    if viewer.role in FULL_ROLES:
        return True
    return owner is None or owner == viewer.id


def visible_card(
    viewer: Viewer, card: CustomerCard | None, policy: CardPolicy = DEFAULT_POLICY
) -> dict[str, Any] | None:
    """The `customer` value of a pop for this viewer (None for an unknown caller)."""
    if card is None:
        return None
    if not may_see_full(viewer, card.owner):
        return restricted_card(card, policy)
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


def restricted_card(card: CustomerCard, policy: CardPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": card.id,
        "name": card.name,
        "tags": list(card.tags),
        "restricted": True,
        "last_outcome": None if card.last_outcome is None else dict(card.last_outcome),
    }
    if "attributes" in policy.non_owner_sections:
        out["attributes"] = dict(card.attributes)
    elif policy.non_owner_attributes:
        granted = {k: v for k, v in card.attributes.items() if k in policy.non_owner_attributes}
        out["attributes"] = granted
    for name in _LISTS:
        if name in policy.non_owner_sections:
            out[name] = [dict(r) for r in getattr(card, name)]
    return out


def sections_shown(card: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Which sections a delivered card carried, for the who-saw-what audit (`card_views`).

    `identity` (id and name) always; `tags` and `last_outcome` when present; each attribute
    as `attributes:<name>`; each list section when it holds at least one row. Sorted, so the
    same card gives the same tuple.
    """
    if not card:
        return ()
    shown = {"identity"}
    if card.get("tags"):
        shown.add("tags")
    if card.get("last_outcome"):
        shown.add("last_outcome")
    attributes = card.get("attributes")
    if isinstance(attributes, Mapping):
        shown.update(f"attributes:{key}" for key in attributes)
    for name in _LISTS:
        if card.get(name):
            shown.add(name)
    return tuple(sorted(shown))
