from __future__ import annotations

import pytest

from bridge.config import build_config
from bridge.crm.agents import Agent
from bridge.errors import ConfigError
from bridge.models import CustomerCard
from bridge.pops.permissions import (
    DEFAULT_POLICY,
    CardPolicy,
    policy_from_config,
    sections_shown,
    visible_card,
)

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


# --- the [permissions] policy -------------------------------------------------------------

OTHERS = CustomerCard(**{**{f: getattr(CARD, f) for f in CARD.__slots__}, "owner": "a2"})
ATTRS = {"lifetime_value": 12000, "language": "en", "segment": "business"}
RICH = CustomerCard(**{**{f: getattr(OTHERS, f) for f in CARD.__slots__}, "attributes": ATTRS})
AGENT = Agent("a1", "A", "agent", "1")


@pytest.mark.parametrize(
    ("sections", "attributes", "keys", "shown_attrs"),
    [
        ((), (), set(), None),  # the default: as before the policy existed
        (("orders",), (), {"orders"}, None),
        (("orders", "history"), (), {"orders", "history"}, None),
        (("contracts", "marketing"), (), {"contracts", "marketing"}, None),
        (("attributes",), (), {"attributes"}, ATTRS),
        ((), ("language",), {"attributes"}, {"language": "en"}),
        ((), ("language", "nps"), {"attributes"}, {"language": "en"}),  # absent: not invented
        (("attributes",), ("language",), {"attributes"}, ATTRS),  # all wins over some
        (
            ("attributes", "orders", "contracts", "marketing", "history"),
            (),
            {"attributes", "orders", "contracts", "marketing", "history"},
            ATTRS,
        ),
    ],
)
def test_a_policy_grants_non_owners_only_the_named_sections(
    sections: tuple[str, ...],
    attributes: tuple[str, ...],
    keys: set[str],
    shown_attrs: dict[str, object] | None,
) -> None:
    seen = visible_card(AGENT, RICH, CardPolicy.of(sections, attributes))
    assert seen is not None
    assert seen["restricted"] is True, "the page must still say why details are missing"
    assert "owner" not in seen
    assert seen.keys() - {"id", "name", "tags", "restricted", "last_outcome"} == keys
    assert seen.get("attributes") == shown_attrs


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_a_policy_never_narrows_the_full_roles_or_the_owner(role: str) -> None:
    nothing = CardPolicy()
    assert visible_card(Agent("s", "S", role, "9"), RICH, nothing)["restricted"] is False  # type: ignore[arg-type,index]
    owner = Agent("a2", "B", "agent", "2")
    assert visible_card(owner, RICH, nothing)["restricted"] is False  # type: ignore[index]


def test_a_policy_with_an_unknown_section_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown card sections"):
        CardPolicy.of(["orders", "passwords"])


def test_the_config_section_becomes_the_policy() -> None:
    config = build_config(
        {"permissions": {"non_owner_sections": ["orders"], "non_owner_attributes": ["tier"]}},
        {},
        runtime=False,
    )
    assert policy_from_config(config.permissions) == CardPolicy.of(["orders"], ["tier"])
    assert policy_from_config(build_config({}, {}, runtime=False).permissions) == DEFAULT_POLICY


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"non_owner_sections": ["orders", "secrets"]}, "permissions.non_owner_sections"),
        ({"non_owner_sections": "orders"}, "permissions.non_owner_sections"),
        ({"non_owner_sections": ["<script>"]}, "permissions.non_owner_sections"),
        ({"non_owner_attributes": ["ok", ""]}, "permissions.non_owner_attributes"),
        ({"non_owner_attributes": ["a\nb"]}, "permissions.non_owner_attributes"),
        ({"non_owner_attributes": ["x" * 101]}, "permissions.non_owner_attributes"),
        ({"non_owner_attributes": [1]}, "permissions.non_owner_attributes"),
        ({"owner_sees": []}, "permissions.owner_sees"),
    ],
)
def test_a_bad_permissions_section_names_the_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"permissions": values}, {}, runtime=False)
    assert err.value.key == key


def test_the_environment_sets_the_policy() -> None:
    env = {"CRM_BRIDGE_PERMISSIONS_NON_OWNER_SECTIONS": "orders, history"}
    config = build_config({}, env, runtime=False)
    assert config.permissions.non_owner_sections == ["orders", "history"]
    env = {"CRM_BRIDGE_PERMISSIONS_NON_OWNER_SECTIONS": "orders,bogus"}
    with pytest.raises(ConfigError, match="bogus"):
        build_config({}, env, runtime=False)


# --- which sections a delivered card held (the who-saw-what audit) -----------------------


@pytest.mark.parametrize(
    ("card", "sections"),
    [
        (None, ()),
        ({}, ()),
        ({"id": "c", "name": "N", "tags": [], "restricted": True}, ("identity",)),
        (
            {"id": "c", "name": "N", "tags": ["vip"], "last_outcome": {"outcome": "answered"}},
            ("identity", "last_outcome", "tags"),
        ),
        (
            {"id": "c", "name": "N", "attributes": {"tier": 1, "nps": 3}, "orders": [{}]},
            ("attributes:nps", "attributes:tier", "identity", "orders"),
        ),
        (
            {"id": "c", "name": "N", "orders": [], "history": [{"summary": "x"}]},
            ("history", "identity"),
        ),
    ],
)
def test_sections_shown_names_what_the_card_held(card, sections) -> None:
    assert sections_shown(card) == sections


def test_sections_shown_of_every_delivered_card() -> None:
    full = visible_card(AGENT, RICH.__class__(**{**_fields(RICH), "owner": None}))
    assert sections_shown(full) == (
        "attributes:language",
        "attributes:lifetime_value",
        "attributes:segment",
        "contracts",
        "history",
        "identity",
        "last_outcome",
        "marketing",
        "orders",
        "tags",
    )
    reduced = visible_card(AGENT, RICH, CardPolicy.of(["orders"], ["language"]))
    assert sections_shown(reduced) == (
        "attributes:language",
        "identity",
        "last_outcome",
        "orders",
        "tags",
    )


def _fields(card: CustomerCard) -> dict[str, object]:
    return {f: getattr(card, f) for f in card.__slots__}
