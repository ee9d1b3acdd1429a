"""`CallCards`: a change notice forgets exactly the live calls showing that customer's card
(and loads still in flight), found through an index rather than a scan of every call."""

from __future__ import annotations

import asyncio

from bridge.pops.call_cards import CallCards


class Lookup:
    def __init__(self) -> None:
        self.task: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()


def customer_of(lookup: Lookup) -> str | None:
    return lookup.task.result() if lookup.task.done() else None


async def land(lookup: Lookup, customer: str | None) -> None:
    """Finish the load and wait until the callbacks registered before ours have run."""
    landed = asyncio.Event()
    lookup.task.add_done_callback(lambda _: landed.set())
    lookup.task.set_result(customer)
    await landed.wait()


async def loaded(cards: CallCards[Lookup], call_id: str, customer: str | None) -> Lookup:
    lookup = Lookup()
    cards.put(call_id, lookup, lookup.task)
    await land(lookup, customer)
    return lookup


async def test_a_notice_forgets_that_customers_calls_and_loads_in_flight() -> None:
    cards: CallCards[Lookup] = CallCards(100, customer_of)
    await loaded(cards, "c1", "alice")
    await loaded(cards, "c2", "bob")
    await loaded(cards, "c3", "alice")
    await loaded(cards, "c4", None)  # an unknown caller
    in_flight = Lookup()
    cards.put("c5", in_flight, in_flight.task)
    cards.forget_customer("alice")
    assert [c for c in ("c1", "c2", "c3", "c4", "c5") if cards.get(c)] == ["c2", "c4"]
    await land(in_flight, "bob")  # a forgotten load that lands is not indexed again
    cards.forget_customer("bob")
    assert [c for c in ("c2", "c4", "c5") if cards.get(c)] == ["c4"]
    cards.forget_customer(None)
    assert len(cards) == 0


async def test_ended_calls_leave_no_trace_in_the_index_and_the_memo_is_bounded() -> None:
    cards: CallCards[Lookup] = CallCards(2, customer_of)
    for n in range(5):
        await loaded(cards, f"c{n}", "alice")
    assert len(cards) == 2 and cards.get("c4") is not None and cards.get("c2") is None
    cards.drop("c3")
    cards.drop("c4")
    assert cards._calls_of == {} and cards._owner == {}  # nothing grows with ended calls
    replaced = await loaded(cards, "c9", "bob")
    await loaded(cards, "c9", "carol")  # the same call looked up again
    assert cards.get("c9") is not replaced
    cards.forget_customer("bob")
    assert cards.get("c9") is not None
