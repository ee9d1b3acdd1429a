"""Component `ami` (or `ari`, `reconcile`) for several PBXs: one part per PBX, started and
stopped together, one health that keeps the CONTRACT's name as the aggregate and shows each
PBX's state.

One PBX down leaves the others' links, pops and records alone; the aggregate is then
`degraded` (the alert on a link down still fires), and `down` only when every PBX is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, runtime_checkable

from bridge.component import Component, Health, State

__all__ = ["PbxGroup", "aggregate_state", "grouped"]

log = logging.getLogger(__name__)


@runtime_checkable
class _Connects(Protocol):
    def connected(self, sessions: int = 1) -> Awaitable[None]: ...


def aggregate_state(states: Sequence[State]) -> State:
    """One state for several links: theirs when they agree, `degraded` when some are up."""
    if not states:
        return "disabled"
    if all(s == states[0] for s in states):
        return states[0]
    if "up" in states:
        return "degraded"
    return "down" if "down" in states else "starting"


class PbxGroup:
    """Several PBXs' links (`AmiLink`s or ARI apps) as one component, keyed by PBX name."""

    def __init__(self, name: str, links: Sequence[tuple[str, Component]]) -> None:
        self.name = name
        self.links = dict(links)

    async def start(self) -> None:
        for component in self.links.values():
            await component.start()

    async def stop(self) -> None:
        for pbx, component in reversed(self.links.items()):
            try:
                await component.stop()
            except Exception:
                log.exception("%s link of PBX %r failed to stop cleanly", self.name, pbx)

    def health(self) -> Health:
        each = {pbx: component.health() for pbx, component in self.links.items()}
        state = aggregate_state([h.state for h in each.values()])
        detail: dict[str, Any] = {"pbx": {pbx: h.state for pbx, h in each.items()}}
        detail["links"] = {pbx: h.detail for pbx, h in each.items()}
        required = any(h.required for h in each.values())
        return Health(state, required=required, detail=detail)

    async def connected(self, sessions: int = 1) -> None:
        """Until every link has logged in `sessions` times (tests)."""
        links = [link for link in self.links.values() if isinstance(link, _Connects)]
        await asyncio.gather(*(link.connected(sessions) for link in links))


def grouped(name: str, parts: Sequence[tuple[str, Component | None]]) -> Component | None:
    """`parts` are (PBX name, its component or None). A single PBX's component is returned
    as it is (a legacy install's components are what they always were); several are grouped
    under the CONTRACT's `name` (None: none enabled)."""
    present = [(pbx, c) for pbx, c in parts if c is not None]
    if len(parts) == 1:
        return present[0][1] if present else None
    return PbxGroup(name, present) if present else None
