"""The agents' pages of `bench/scale_run.py`: one websocket pop client per agent.

Each page says hello to the instance a load balancer gave it; when that instance goes away,
it reconnects to another one and notes when it was welcomed again and when it next received
a call pop (the catch-up of its live calls, or the next call).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

CALL_POPS = ("call.ringing", "call.answered", "call.retracted", "call.transferred", "call.ended")


@dataclass(slots=True)
class Page:
    agent: str
    token: str
    ports: list[int]  # pop ports of the instances, the page's own first
    received: Counter[str] = field(default_factory=Counter)
    lost_at: float | None = None  # wall time its instance went away (last one)
    welcomed_at: float | None = None  # ... and it was welcomed by another one
    popped_at: float | None = None  # ... and its first call pop after that
    reconnects: int = 0
    live: set[str] = field(default_factory=set)  # calls ringing or answered on its device
    live_at_loss: int = 0  # how many it had when its instance went away (caught up after)
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        turn = 0
        while not stop.is_set():
            port = self.ports[turn % len(self.ports)]
            with contextlib.suppress(OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                await self._session(port, stop)
            if stop.is_set():
                return
            if self.welcomed.is_set() and self.lost_at is None:
                self.lost_at = time.time()
                self.welcomed_at = self.popped_at = None
                self.live_at_loss = len(self.live)
                self.live.clear()  # the next instance's catch-up says which are still live
            turn += 1
            self.reconnects += 1
            await asyncio.sleep(0.05 if turn % len(self.ports) else 0.5)

    async def _session(self, port: int, stop: asyncio.Event) -> None:
        async with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "hello", "token": self.token}))
            closer = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    getter = asyncio.ensure_future(ws.recv())
                    done, _ = await asyncio.wait(
                        {getter, closer}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                        return
                    self._note(json.loads(getter.result()))
            finally:
                closer.cancel()

    def _note(self, message: dict[str, object]) -> None:
        kind = str(message.get("type"))
        self.received[kind] += 1
        now = time.time()
        call = str(message.get("call_id"))
        if kind in ("call.ringing", "call.answered"):
            self.live.add(call)
        elif kind in ("call.retracted", "call.ended") or (
            kind == "call.transferred" and message.get("agent") != self.agent
        ):
            self.live.discard(call)
        if kind == "welcome":
            self.welcomed.set()
            if self.lost_at is not None and self.welcomed_at is None:
                self.welcomed_at = now
        elif kind in CALL_POPS and self.welcomed_at is not None and self.popped_at is None:
            self.popped_at = now  # welcomed_at is set only after a loss


def spread(tokens: dict[str, str], pops_ports: list[int]) -> list[Page]:
    """One page per agent, dealt round-robin over the instances as by a load balancer."""
    pages = []
    for n, (agent, token) in enumerate(sorted(tokens.items())):
        first = n % len(pops_ports)
        order = pops_ports[first:] + pops_ports[:first]
        pages.append(Page(agent, token, order))
    return pages
