"""`Dialer`: the one way a click-to-call is placed, whoever asks (desk, admin API, CLI).

In order: the agent must be active and have a device (`DialForbidden`); the number must pass
`check_number` (`NumberRefused`); the agent must be under `[dial] per_minute`
(`DialRateLimited`, with the seconds to wait); then one AMI Originate rings the agent's own
device (`originate_fields`). Every attempt, refused or not, writes one `audit_log` row
(`call.dial`: who asked, for which agent, the number as typed, the result and the reason), so
an abuse attempt leaves a trace as well as a dial does.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from bridge.ami.protocol import Frame
from bridge.config import Config
from bridge.crm import audit
from bridge.crm.agents import Agent
from bridge.dial.originate import DEVICE, new_call_id, originate_fields
from bridge.dial.safety import DialTarget, NumberRefused, check_number
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
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._config = config
        self._send = send
        self._clock = clock
        self._recent: dict[str, collections.deque[float]] = {}

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
        target: DialTarget = check_number(
            number, region=self._config.pbx.default_region, allow=self._config.dial.allow
        )
        self._take_slot(agent.id)
        call_id = new_call_id()
        fields = originate_fields(
            self._config, device=agent.device, digits=target.digits, call_id=call_id
        )
        try:
            frame = await self._send("Originate", fields)
        except (LinkDown, UnsafeValueError) as exc:
            raise DialFailed(f"the PBX cannot be reached: {exc}") from exc
        if (frame.response or "").lower() != "success":
            message = frame.get("Message") or "no reason given"
            raise DialFailed(f"the PBX refused the call: {message[:200]}")
        log.info("click-to-call %s: agent %s dials %s", call_id, agent.id, target.e164)
        return Dialed(call_id, agent.id, target.e164, callback_of)

    def _take_slot(self, agent_id: str) -> None:
        """A sliding minute per agent; a refused attempt does not take a slot."""
        now = self._clock()
        recent = self._recent.setdefault(agent_id, collections.deque())
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        if len(recent) >= self._config.dial.per_minute:
            raise DialRateLimited(max(1, math.ceil(recent[0] + WINDOW_S - now)))
        recent.append(now)

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
        except _DB_ERRORS as exc:
            # The dial is placed (or refused) already; losing its audit row is logged loudly.
            log.error("cannot audit the dial %s by %s: %s", call_id or "(refused)", actor, exc)
