"""Several PBXs' queue members read as one, for the wallboard and agents' pauses.

Devices are namespaced per PBX (`bridge.pbx.namespace`), so a pause goes to the one PBX
whose prefix the device carries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bridge.errors import BridgeError, LinkDown
from bridge.wallboard.ami import PauseFailed, QueueControl
from bridge.wallboard.stats import Member

__all__ = ["PbxQueues"]

log = logging.getLogger(__name__)


class PbxQueues:
    """`QueueControl` over several PBXs: members of every PBX that answers (one PBX down
    leaves the others' members listed), pauses sent to the device's own PBX."""

    def __init__(
        self, controls: Sequence[tuple[str, QueueControl]], *, timeout_s: float = 3.0
    ) -> None:
        self._controls = tuple(controls)  # (device prefix, that PBX's control)
        # A PBX that stopped answering (half-open link) must not hold the others' listing
        # for the link's whole action timeout.
        self._timeout_s = timeout_s

    async def _members_of(self, control: QueueControl) -> list[Member]:
        try:
            return await asyncio.wait_for(control.members(), self._timeout_s)
        except TimeoutError as exc:
            raise LinkDown(f"no queue members within {self._timeout_s:g} s") from exc

    async def members(self) -> list[Member]:
        listed = await asyncio.gather(
            *(self._members_of(control) for _, control in self._controls),
            return_exceptions=True,
        )
        out: list[Member] = []
        failed: list[BaseException] = []
        for (prefix, _), result in zip(self._controls, listed, strict=True):
            if isinstance(result, BridgeError):
                log.debug("queue members of PBX %r not listed: %s", prefix, result)
                failed.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                out.extend(result)
        if failed and len(failed) == len(self._controls):
            raise failed[0]
        return out

    async def pause(self, device: str, paused: bool, reason: str) -> int:
        for prefix, control in self._controls:
            if device.startswith(prefix):
                return await control.pause(device, paused, reason)
        raise PauseFailed(f"device {device[:80]} belongs to no configured PBX")
