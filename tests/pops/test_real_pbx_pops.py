"""Real-PBX shapes (issues 19, 20) through the tracker and a real pop hub to agents' pages.

The tracker takes only the roster's devices for agents, as the AMI plugin wires it: a FreePBX
queue's `Local/<ext>@from-queue` hops reach the agent behind them, a ring group's hop
(`Local/600@ringgroup`) pops nobody, an agent dialling out gets `call.dialing` with the card
of the customer it dialled (never of its own caller ID), and agents calling each other see
no customer.
"""

from __future__ import annotations

from typing import Any

from tests.crm.fixture_crm import BOB
from tests.pops.conftest import recv_until_pong


def _types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


async def test_a_phone_dialling_out_pops_the_dialled_customer_then_answered(
    make_hub: Any,
) -> None:
    env = await make_hub(roster_agents=True)
    ann = await env.connect("1001")
    env.play("dial-out-phone")
    messages = await recv_until_pong(ann)
    assert _types(messages) == ["call.dialing", "call.answered", "call.ended"]
    dialing = messages[0]
    assert dialing["caller"] == "15551230002"
    assert dialing["customer"]["id"] == BOB
    assert messages[1]["agent"] == "1001"


async def test_a_pbx_click_to_dial_rings_the_agent_silently_then_pops_the_customer(
    make_hub: Any,
) -> None:
    env = await make_hub(roster_agents=True)
    ann = await env.connect("1001")
    env.play("click-to-dial-pbx")
    messages = await recv_until_pong(ann)
    assert _types(messages) == ["call.dialing", "call.answered", "call.ended"]
    assert messages[0]["customer"]["id"] == BOB


async def test_an_unanswered_dial_out_closes_the_card(make_hub: Any) -> None:
    env = await make_hub(roster_agents=True)
    ann = await env.connect("1001")
    env.play("dial-out-unanswered")
    messages = await recv_until_pong(ann)
    assert _types(messages) == ["call.dialing", "call.retracted"]
    assert messages[1]["reason"] == "no_answer"


async def test_a_call_between_agents_shows_no_customer(make_hub: Any) -> None:
    env = await make_hub(roster_agents=True)
    cat = await env.connect("2001")
    env.play("internal-call")
    messages = await recv_until_pong(cat)
    assert messages[0]["type"] == "call.ringing"
    assert messages[0]["customer"] is None
    assert "call.ended" in _types(messages)


async def test_a_ring_group_pops_both_agents_and_never_its_hop(make_hub: Any) -> None:
    env = await make_hub(roster_agents=True)
    ann, ben = await env.connect("1001"), await env.connect("1002")
    events = env.play("ringgroup")
    assert {getattr(e, "device", None) for e in events} <= {"1001", "1002", None}
    to_ann = await recv_until_pong(ann)
    to_ben = await recv_until_pong(ben)
    assert _types(to_ann) == ["call.ringing", "call.answered", "call.ended"]
    assert _types(to_ben) == ["call.ringing", "call.retracted"]
    assert to_ann[0]["customer"]["id"] == BOB and to_ann[0]["queue"] == "600"


async def test_after_a_freepbx_blind_transfer_the_target_gets_the_card(make_hub: Any) -> None:
    env = await make_hub(roster_agents=True)
    cat = await env.connect("2001")
    env.play("fpbx-blind-transfer")
    messages = await recv_until_pong(cat)
    assert _types(messages)[:2] == ["call.ringing", "call.transferred"]
    assert messages[0]["customer"]["id"] == BOB
    assert messages[0]["transfer_from"] == "1001"
