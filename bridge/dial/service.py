"""`Dialer`: the one way a click-to-call is placed, whoever asks (desk, admin API, CLI).

In order: the agent must be active and have a device (`DialForbidden`); the number must pass
`check_number` (`NumberRefused`); the agent must be under `[dial] per_minute`
(`DialRateLimited`, with the seconds to wait; counted in PostgreSQL, shared by every
instance: `bridge.dial.slots`); then one AMI Originate rings the agent's own
device (`originate_fields`). Every attempt, refused or not, writes one `audit_log` row
(`call.dial`: who asked, for which agent, the number as typed, the result and the reason), so
an abuse attempt leaves a trace as well as a dial does.

Several PBXs (`sites`): the agent's own PBX (`Agent.pbx`) gets the Originate, with its
`[pbx]` keys, and the call id is namespaced like that PBX's calls (`east:c2d-…`); an agent on
no configured PBX may not dial.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from bridge.ami.protocol import Frame
from bridge.clock import UnixClock
from bridge.config import Config, PbxSite
from bridge.crm import audit
from bridge.crm.agents import Agent
from bridge.db.errors import DB_ERRORS
from bridge.dial.originate import DEVICE, new_call_id, originate_fields
from bridge.dial.safety import DialTarget, NumberRefused, check_number
from bridge.dial.slots import take_slot
from bridge.errors import BridgeError, LinkDown, UnsafeValueError

__all__ = [
    "DialFailed",
    "DialForbidden",
    "DialRateLimited",
    "Dialed",
    "Dialer",
    "NumberRefused",
]

log = logging.getLogger(__name__)

SendAction = Callable[[str, Mapping[str, str | int]], Awaitable[Frame]]
WINDOW_S = 60.0


class DialForbidden(BridgeError):
    """The agent may not dial (disabled, no device, or someone else's device)."""


class DialRateLimited(BridgeError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many dials; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class DialFailed(BridgeError):
    """The PBX refused the Originate or could not be reached."""


@dataclass(frozen=True, slots=True)
class Dialed:
    call_id: str
    agent: str
    number: str  # E.164
    callback_of: str | None = None


class Dialer:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        config: Config,
        send: SendAction,
        *,
        clock: UnixClock = time.time,
        sites: Mapping[str, tuple[PbxSite, SendAction]] | None = None,
    ) -> None:
        self._pool = pool
        self._config = config
        self._send = send
        self._sites = sites  # [[pbx]] name -> (its site, its link's send)
        self._clock = clock  # wall-clock seconds: the instances share the slots

    async def dial(
        self, agent: Agent, number: object, *, actor: str, callback_of: str | None = None
    ) -> Dialed:
        """Place the call, or raise DialForbidden / NumberRefused / DialRateLimited /
        DialFailed. Audited either way."""
        typed = number if isinstance(number, str) else repr(number)
        try:
            result = await self._dial(agent, number, callback_of)
        except (DialForbidden, NumberRefused, DialRateLimited, DialFailed) as exc:
            outcome = {
                DialForbidden: "forbidden",
                NumberRefused: "refused",
                DialRateLimited: "rate_limited",
                DialFailed: "failed",
            }[type(exc)]
            await self._audit(actor, agent.id, "", typed, outcome, str(exc), callback_of)
            raise
        await self._audit(
            actor, agent.id, result.call_id, typed, "queued", result.number, callback_of
        )
        return result

    async def _dial(self, agent: Agent, number: object, callback_of: str | None) -> Dialed:
        if not agent.active:
            raise DialForbidden(f"agent {agent.id} is disabled")
        if not agent.device or not DEVICE.fullmatch(agent.device):
            raise DialForbidden(f"agent {agent.id} has no device to ring")
        config, send, site = self._config, self._send, None
        if self._sites is not None:
            found = self._sites.get(agent.pbx)
            if found is None:
                raise DialForbidden(f"agent {agent.id}'s device is on no configured PBX")
            site, send = found
            config = self._config.for_pbx(site)
        target: DialTarget = check_number(
            number, region=config.pbx.default_region, allow=config.dial.allow
        )
        await self._take_slot(agent.id)
        call_id = new_call_id()
        fields = originate_fields(
            config, device=agent.device, digits=target.digits, call_id=call_id
        )
        if site is not None:
            call_id = site.qualify(call_id)  # as that PBX's tracker will name the call
        try:
            frame = await send("Originate", fields)
        except (LinkDown, UnsafeValueError) as exc:
            raise DialFailed(f"the PBX cannot be reached: {exc}") from exc
        if (frame.response or "").lower() != "success":
            message = frame.get("Message") or "no reason given"
            raise DialFailed(f"the PBX refused the call: {message[:200]}")
        log.info("click-to-call %s: agent %s dials %s", call_id, agent.id, target.e164)
        return Dialed(call_id, agent.id, target.e164, callback_of)

    async def _take_slot(self, agent_id: str) -> None:
        """A sliding minute per agent, shared by the instances; a refused attempt does not
        take a slot."""
        try:
            wait = await take_slot(
                self._pool,
                agent_id,
                now=self._clock(),
                per_minute=self._config.dial.per_minute,
                window_s=WINDOW_S,
            )
        except DB_ERRORS as exc:
            raise DialFailed(f"the dial limit cannot be checked: {exc}") from exc
        if wait is not None:
            raise DialRateLimited(wait)

    async def _audit(
        self,
        actor: str,
        agent_id: str,
        call_id: str,
        typed: str,
        result: str,
        detail: str,
        callback_of: str | None,
    ) -> None:
        after = {
            "agent": agent_id,
            "number": typed[:64],
            "result": result,
            "detail": detail[:300],
            "callback_of": callback_of,
        }
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await audit.record(
                    conn,
                    actor=actor,
                    action="call.dial",
                    target_type="call",
                    target_id=call_id,
                    before=None,
                    after=after,
                )
                if call_id and callback_of:
                    await conn.execute(
                        "INSERT INTO call_backs (call_id, callback_of, agent) VALUES ($1, $2, $3)"
                        " ON CONFLICT (call_id) DO NOTHING",
                        call_id,
                        callback_of,
                        agent_id,
                    )
        except DB_ERRORS as exc:
            # The dial is placed (or refused) already; losing its audit row is logged loudly.
            log.error("cannot audit the dial %s by %s: %s", call_id or "(refused)", actor, exc)
