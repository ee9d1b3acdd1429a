"""Finding likely duplicate customers: pure, by tables (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.crm.dedup import Group, Record, describe, find_groups, name_key
from bridge.crm.merge import MergePolicy, merged_state
from bridge.errors import MergeConflict


@pytest.mark.parametrize(
    ("a", "b"),
    [("Chen, Alice", "alice chen"), ("  ALICE   Chén ", "Alice Chen"), ("José-Luis", "luis jose")],
)
def test_name_key_ignores_case_accents_punctuation_and_order(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


def test_same_phone_in_another_format_groups() -> None:
    records = [
        Record("c1", "Alice", ("+15551230001",)),
        Record("c2", "A. Chen", ("+15551239999",), {"mobile": "(555) 123-0001"}),
        Record("tel-15551230002", "Bob", ()),
        Record("c3", "Robert", ("+15551230002",)),
        Record("c4", "Nobody", ("+15551230004",), {"mobile": "not a number"}),
    ]
    assert find_groups(records, "US") == [
        Group(("c1", "c2"), ("same phone +15551230001 (c1: phone, c2: other format)",)),
        Group(
            ("c3", "tel-15551230002"),
            ("same phone +15551230002 (c3: phone, tel-15551230002: other format)",),
        ),
    ]


def test_same_email_groups_whatever_the_case() -> None:
    records = [
        Record("c1", "Alice", attributes={"email": "Alice@Example.com "}),
        Record("c2", "Ally", attributes={"e-mail": "alice@example.com"}),
        Record("c3", "Other", attributes={"email": "other@example.com"}),
        Record("c4", "Junk", attributes={"email": "not-an-address"}),
        Record("c5", "Junk Two", attributes={"email": "not-an-address"}),
    ]
    assert find_groups(records, "US") == [
        Group(("c1", "c2"), ("same e-mail alice@example.com",)),
    ]


def test_same_name_needs_a_shared_attribute_or_owner() -> None:
    records = [
        Record("c1", "Alice Chen", attributes={"company": "Acme"}),
        Record("c2", "chen, alice", attributes={"company": "Acme"}),
        Record("c3", "Alice Chen", attributes={"company": "Other"}),  # same name only
        Record("c4", "Bob Li", owner="1001"),
        Record("c5", "Li Bob", owner="1001"),
        Record("c6", "Bob Li", owner="1002"),
    ]
    groups = find_groups(records, "US")
    assert groups == [
        Group(("c1", "c2"), ("same name 'alice chen' and company 'Acme'",)),
        Group(("c4", "c5"), ("same name 'bob li' and owner 1001",)),
    ]
    text = describe(groups)
    assert text[0] == "group 1: c1 c2"
    assert "  merge with: crm-bridge customers merge c1 c2" in text


def test_groups_chain_through_different_reasons() -> None:
    records = [
        Record("a", "X", ("+15551230001",), {"email": "x@example.com"}),
        Record("b", "Y", (), {"email": "x@example.com", "phone2": "+1 555 123 0003"}),
        Record("c", "Z", ("+15551230003",)),
    ]
    (group,) = find_groups(records, "US")
    assert group.ids == ("a", "b", "c") and len(group.reasons) == 2


def _snap(cid: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": cid, "name": cid.upper(), "phones": [], "tags": [], "attributes": {}, "owner": None
    }  # fmt: skip
    return {**base, **kw}


def test_merged_state_unions_phones_and_tags_and_keeps_lone_values() -> None:
    survivor = _snap("c1", phones=["+15551230001"], tags=["vip"], attributes={"a": 1})
    other = _snap("c2", phones=["+15551230002"], tags=["b2b", "vip"], attributes={"b": 2})
    after = merged_state(survivor, [other], MergePolicy())
    assert after == {
        "id": "c1",
        "name": "C1",
        "phones": ["+15551230001", "+15551230002"],
        "tags": ["b2b", "vip"],
        "attributes": {"a": 1, "b": 2},
        "owner": None,
    }
    assert merged_state(survivor, [other], MergePolicy(tags="survivor"))["tags"] == ["vip"]


def test_merged_state_refuses_conflicts_naming_each_one() -> None:
    survivor = _snap("c1", attributes={"tier": "gold"}, owner="1001")
    other = _snap("c2", attributes={"tier": "silver"}, owner="1002")
    with pytest.raises(MergeConflict) as exc:
        merged_state(survivor, [other], MergePolicy())
    assert exc.value.conflicts == [
        'attribute \'tier\' differs (c1="gold", c2="silver")',
        "owner differs (c1=1001, c2=1002)",
    ]
    settled = merged_state(survivor, [other], MergePolicy(on_conflict="survivor"))
    assert settled["attributes"] == {"tier": "gold"} and settled["owner"] == "1001"
    with pytest.raises(MergeConflict) as exc:
        merged_state(survivor, [other], MergePolicy(owner="1002"))
    assert len(exc.value.conflicts) == 1  # the owner is settled, the tier is not
    no_owner = _snap("c1")
    assert merged_state(no_owner, [other], MergePolicy())["owner"] == "1002"
