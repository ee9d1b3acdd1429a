"""Every card delivered is an audit row, and what a non-owner sees follows [permissions]."""

from __future__ import annotations

from bridge.config import build_config
from bridge.pops.card_views import CardViewAudit
from tests.crm.fixture_crm import ALICE
from tests.pops.conftest import recv_until_pong


async def test_each_card_delivered_is_audited_with_the_sections_shown(make_hub) -> None:
    rows_sql = "SELECT agent_id, customer_id, call_id, sections FROM card_views ORDER BY agent_id"
    env = await make_hub()
    audit = CardViewAudit(env.pool)
    env.hub._card_seen = audit.note  # as the composition root wires it
    await env.pool.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, '2002')", ALICE
    )
    await env.pool.execute(
        "INSERT INTO orders (customer_id, reference, product, amount) VALUES ($1, 'o', 'Phone', 9)",
        ALICE,
    )
    owner, other, bystander = (
        await env.connect("2002"),
        await env.connect("2001"),
        await env.connect("1001"),
    )
    events = env.play("vip-answered")
    for ws in (owner, other, bystander):
        await recv_until_pong(ws)  # everything delivered
    await audit.drain()
    rows = [tuple(r) for r in await env.pool.fetch(rows_sql)]
    call_id = events[0].call_id
    expected = [("2001", ALICE, call_id), ("2002", ALICE, call_id)]
    assert [(a, c, k) for a, c, k, _ in rows] == expected
    sections = {a: set(s) for a, _, _, s in rows}
    assert "orders" in sections["2002"] and "attributes" not in sections["2001"]
    assert {"identity", "tags"} <= sections["2001"]


async def test_permissions_config_opens_sections_to_non_owners(make_hub) -> None:
    config = build_config(
        {
            "pops": {"port": 0},
            "http": {"port": 0},
            "permissions": {"non_owner_sections": ["orders"], "non_owner_attributes": ["tier"]},
        },
        {},
        runtime=False,
    )
    env = await make_hub(config=config)
    await env.pool.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, '2002')", ALICE
    )
    await env.pool.execute(
        "UPDATE customers SET attributes = $2::jsonb WHERE id = $1",
        ALICE,
        {"tier": "gold", "income": 1},
    )
    await env.pool.execute(
        "INSERT INTO orders (customer_id, reference, product, amount) VALUES ($1, 'o', 'Phone', 9)",
        ALICE,
    )
    other = await env.connect("2001")
    env.play("vip-answered")
    card = (await recv_until_pong(other))[0]["customer"]
    assert card["restricted"] is True
    assert card["orders"][0]["product"] == "Phone"
    assert card["attributes"] == {"tier": "gold"}
    assert "history" not in card and "contracts" not in card
