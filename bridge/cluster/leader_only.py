"""`LeaderOnly`: a component that runs only while this instance holds the lease.

    ("reconcile", lambda rt: leader_only(rt, _reconcile(rt)))

It starts the wrapped component when the lease is taken (at start-up for a lone instance)
and stops it when the lease is lost or the bridge stops; on a standby its health is
"standby". Attribute reads go to the wrapped component (`rt.get("monitor").watches`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bridge.cluster.lease import Lease
from bridge.component import Component, Health

__all__ = ["LeaderOnly"]

log = logging.getLogger(__name__)


class LeaderOnly:
    def __init__(self, inner: Component, lease: Lease) -> None:
        self.name = inner.name
        self.inner = inner
        self._lease = lease
        self._running = False
        self._switch = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        self._lease.follow(self)
        await self.on_lease(self._lease.held)

    async def stop(self) -> None:
        self._lease.unfollow(self)
        async with self._switch:
            if self._running:
                self._running = False
                await self.inner.stop()

    async def on_lease(self, held: bool) -> None:
        async with self._switch:
            if held == self._running:
                return
            try:
                if held:
                    await self.inner.start()
                else:
                    await self.inner.stop()
            except Exception:  # one job's failure must not stop the others' switch
                log.exception("%s: failed to %s", self.name, "start" if held else "stop")
            self._running = held

    def health(self) -> Health:
        if self._running:
            return self.inner.health()
        return Health("standby", required=False, detail={"runs_on": "leader"})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
