"""The hub's memo of each live call's card lookup, indexed by the customer it found.

A call's card is looked up once and shared by every pop of the call; a change notice about
a customer must reach the calls showing that customer's card (`forget_customer`) without a
scan of every live call per notice (a bulk import sends one notice per customer). Loads
still in flight may predate the notice, so they are forgotten too; a forgotten lookup keeps
serving the pops that already hold it. Bounded by `max_calls`, oldest call first out.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["CallCards"]

L = TypeVar("L")


class CallCards(Generic[L]):
    """`customer_of(lookup)`: the id of the customer a finished lookup found, else None."""

    def __init__(self, max_calls: int, customer_of: Callable[[L], str | None]) -> None:
        self._max = max(1, max_calls)
        self._customer_of = customer_of
        self._by_call: dict[str, L] = {}  # oldest first
        self._in_flight: set[str] = set()
        self._owner: dict[str, str] = {}  # call id -> the customer its card is of
        self._calls_of: dict[str, set[str]] = {}  # customer id -> call ids

    def __len__(self) -> int:
        return len(self._by_call)

    def get(self, call_id: str) -> L | None:
        return self._by_call.get(call_id)

    def values(self) -> Iterator[L]:
        return iter(list(self._by_call.values()))

    def put(self, call_id: str, lookup: L, done: asyncio.Future[Any]) -> None:
        """Keep `lookup` for the call until dropped; `done` finishes with its load (the
        oldest call goes past `max_calls`)."""
        self.drop(call_id)
        while len(self._by_call) >= self._max:
            self.drop(next(iter(self._by_call)))
        self._by_call[call_id] = lookup
        self._in_flight.add(call_id)
        done.add_done_callback(functools.partial(self._loaded, call_id, lookup))

    def drop(self, call_id: str) -> None:
        self._by_call.pop(call_id, None)
        self._in_flight.discard(call_id)
        owner = self._owner.pop(call_id, None)
        if owner is not None:
            calls = self._calls_of[owner]
            calls.discard(call_id)
            if not calls:
                del self._calls_of[owner]

    def forget_customer(self, customer_id: str | None) -> None:
        """A change notice for `customer_id` (None: anything may have changed)."""
        if customer_id is None:
            gone = list(self._by_call)
        else:
            gone = [*self._in_flight, *self._calls_of.get(customer_id, ())]
        for call_id in gone:
            self.drop(call_id)

    def clear(self) -> None:
        for call_id in list(self._by_call):
            self.drop(call_id)

    def _loaded(self, call_id: str, lookup: L, _: asyncio.Future[Any]) -> None:
        if self._by_call.get(call_id) is not lookup:
            return  # dropped, or replaced by a newer lookup
        self._in_flight.discard(call_id)
        customer_id = self._customer_of(lookup)
        if customer_id is not None:
            self._owner[call_id] = customer_id
            self._calls_of.setdefault(customer_id, set()).add(call_id)
