"""The PBX side of queues: who is a member where (`QueueStatus`), pausing (`QueuePause`).

The hub and the board know only `QueueControl`; `AmiQueues` implements it over the AMI link.
`QueuePause` without a `Queue` pauses the interface in every queue it belongs to, but an
agent's device may be a member under several interfaces (`PJSIP/1001`, `Local/1001@phones/n`),
so the members listed for the agent's device are paused one interface at a time.
Asterisk checks the `agent` write class for `QueuePause` (app_queue.c registers it with
EVENT_FLAG_AGENT): the AMI user needs `write = reporting,agent` (dialplan/manager.conf).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from bridge.ami.protocol import Frame
from bridge.devices import DeviceMatcher
from bridge.errors import BridgeError
from bridge.wallboard.stats import Member

__all__ = ["AmiQueues", "ListingLink", "PauseFailed", "QueueControl", "members_from_listing"]


class PauseFailed(BridgeError):
    """The PBX refused or could not be asked to pause an agent."""


class QueueControl(Protocol):
    async def members(self) -> list[Member]: ...

    async def pause(self, device: str, paused: bool, reason: str) -> int: ...


class ListingLink(Protocol):
    async def action(self, name: str, fields: Mapping[str, str | int] | None = None) -> Frame: ...

    async def listing(
        self, name: str, fields: Mapping[str, str | int], complete_event: str
    ) -> list[Frame]: ...


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}


def members_from_listing(
    frames: list[Frame], device_pattern: DeviceMatcher
) -> list[tuple[Member, str]]:
    """(member, interface) of each `QueueMember` of a `QueueStatus` listing with a device."""
    out: list[tuple[Member, str]] = []
    for frame in frames:
        if (frame.get("Event") or "") != "QueueMember":
            continue
        interface = frame.get("Location") or frame.get("Interface") or ""
        found = device_pattern.match(interface) or device_pattern.match(
            frame.get("StateInterface") or ""
        )
        if found is None or not found.group("ext"):
            continue
        member = Member(
            queue=frame.get("Queue") or "",
            device=found.group("ext"),
            name=(frame.get("Name") or frame.get("MemberName") or "")[:80],
            paused=_flag(frame.get("Paused")),
            reason=(frame.get("PausedReason") or "")[:80],
        )
        out.append((member, interface))
    return out


class AmiQueues:
    def __init__(self, link: ListingLink, device_pattern: DeviceMatcher) -> None:
        self._link = link
        self._pattern = device_pattern

    async def _listed(self) -> list[tuple[Member, str]]:
        frames = await self._link.listing("QueueStatus", {}, "QueueStatusComplete")
        return members_from_listing(frames, self._pattern)

    async def members(self) -> list[Member]:
        return [member for member, _ in await self._listed()]

    async def pause(self, device: str, paused: bool, reason: str) -> int:
        """Pause (or resume) `device` in all its queues; the number of interfaces changed.
        Raises PauseFailed when it is no queue's member or the PBX refuses."""
        interfaces = dict.fromkeys(i for m, i in await self._listed() if m.device == device)
        if not interfaces:
            raise PauseFailed(f"device {device} is not a member of any queue")
        for interface in interfaces:
            fields: dict[str, str | int] = {
                "Interface": interface,
                "Paused": "true" if paused else "false",
            }
            if paused and reason:
                fields["Reason"] = reason
            response = await self._link.action("QueuePause", fields)
            if (response.get("Response") or "").lower() != "success":
                raise PauseFailed(response.get("Message") or "the PBX refused QueuePause")
        return len(interfaces)
