"""The `/route` FastAGI handler: `AGI(agi://HOST:4573/route)`.

From the session's environment it builds an `InboundCall`, asks the router, and sets the
CONTRACT's `BRIDGE_*` channel variables. The caller never waits past `[agi] budget_ms`:
the session's deadline is fixed once, when its header is complete, and everything before
the variables waits against it (`bridge.routing.budget`). The router is given that deadline, and the
handler holds it too, so that a router with a bug cannot hold a call either; past it the
call gets `default_route`. The call's Linkedid (for `[pbx] recording_template`) is asked
for with `GET VARIABLE CHANNEL(linkedid)` while the router works, until the same deadline;
when it is late or missing, the channel's own uniqueid stands in.

Commands go one at a time, each reply read before the next command is sent. Pipelining them
would stall a real Asterisk: res_agi reads commands with `fgets` on a buffered `FILE*` but
waits for the next one by polling the raw descriptor, so commands already sitting in the
stdio buffer are not seen until more bytes arrive.

Several PBXs (`[[pbx]]`): the request is attributed to one (`bridge.agi.attribution`), whose
region and recording template apply and whose namespace the recorded decision's Linkedid
and Uniqueid take, so the decision joins that PBX's call record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime
from typing import Protocol

from bridge.agi import metrics
from bridge.agi.attribution import site_for_request
from bridge.agi.protocol import AgiEnv, argument_text, encode_get_variable, encode_set_variable
from bridge.agi.server import AgiSession
from bridge.clock import WallClock, utc_now
from bridge.config import Config
from bridge.crm.phones import to_e164
from bridge.models import Decision, InboundCall
from bridge.pbx.namespace import namespace_event
from bridge.routing.budget import abandon, by_deadline, deadline_after, default_route
from bridge.routing.variables import contract_variables, recording_name

log = logging.getLogger(__name__)

_NO_VALUE = frozenset({"", "unknown", "s"})


class Router(Protocol):
    async def route(self, call: InboundCall, deadline: float | None = None) -> Decision:
        """The decision by `deadline` (event-loop time)."""
        ...

    async def record(
        self, call: InboundCall, decision: Decision, recording: str | None
    ) -> None: ...


def _text(value: str, limit: int) -> str:
    return argument_text(value, limit).strip()


def inbound_call(env: AgiEnv, *, default_region: str, at: datetime) -> InboundCall:
    """The call as the router sees it; every value from the PBX made safe text."""
    raw_caller = _text(env.get("callerid"), 80)
    extension = _text(env.get("extension"), 80)
    dnid = _text(env.get("dnid"), 80)
    did = extension
    if extension.lower() in _NO_VALUE and dnid.lower() not in _NO_VALUE:
        did = dnid
    name = _text(env.get("calleridname"), 256)
    return InboundCall(
        raw_caller=raw_caller,
        caller=to_e164(raw_caller, default_region) if raw_caller else None,
        caller_name="" if name.lower() == "unknown" else name,
        did=did,
        at=at,
        channel=_text(env.get("channel"), 256),
        uniqueid=_text(env.get("uniqueid"), 150),
    )


class RouteHandler:
    """`Handler` for the `route` script (see module docstring)."""

    def __init__(
        self,
        router: Router,
        config: Config,
        *,
        now: WallClock = utc_now,
    ) -> None:
        self._router = router
        self._config = config
        self._now = now

    async def __call__(self, session: AgiSession) -> None:
        started = time.perf_counter()
        deadline = deadline_after(self._config.agi.budget_ms)
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        site = site_for_request(session.env, peer, self._config.pbxs)
        pbx = self._config.pbx if site is None else site.pbx
        call = inbound_call(session.env, default_region=pbx.default_region, at=self._now())
        work = asyncio.ensure_future(self._router.route(call, deadline))
        try:
            linkedid = await self._linkedid(session, deadline)
        except BaseException:
            # The session ended first: the router still answers by the deadline, and is
            # cut off there if it does not (cancelling a lookup mid-connect upsets the driver).
            asyncio.get_running_loop().call_at(deadline, abandon, work)
            raise
        decision = await self._decision(work, deadline)
        abandon(work)
        metrics.ROUTE_SECONDS.observe(time.perf_counter() - started)
        call = dataclasses.replace(call, linkedid=linkedid or call.uniqueid)
        recording = recording_name(
            pbx.recording_template,
            linkedid=call.linkedid,
            uniqueid=call.uniqueid,
        )
        try:
            await self._set_variables(session, decision, recording)
        finally:
            if site is not None:
                await self._router.record(namespace_event(call, site.prefix), decision, recording)
            else:
                metrics.ERRORS.labels("unattributed").inc()
                log.warning(
                    "FastAGI %s: no PBX named by ?pbx= or known by address; routed, not recorded",
                    peer,
                )

    async def _linkedid(self, session: AgiSession, deadline: float) -> str:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            reply = await session.command(
                encode_get_variable("CHANNEL(linkedid)"), timeout_s=remaining
            )
        except TimeoutError:
            log.info("no linkedid within the budget; uniqueid used for the recording name")
            return ""
        if not reply.ok or reply.result != 1 or not reply.data:
            return ""
        return _text(reply.data, 150)

    async def _decision(self, work: asyncio.Future[Decision], deadline: float) -> Decision:
        try:
            return await by_deadline(work, deadline)
        except TimeoutError:
            log.warning("no routing decision within the budget; default route")
        except Exception:
            log.exception("the router failed; default route")
        metrics.ERRORS.labels("late_decision").inc()
        return default_route(self._config.routing)

    async def _set_variables(self, session: AgiSession, decision: Decision, recording: str) -> None:
        for name, value in contract_variables(decision, recording):
            if session.hangup:
                log.info("channel hung up; %s and later variables not set", name)
                return
            reply = await session.command(encode_set_variable(name, value))
            if not reply.ok:
                log.warning(
                    "SET VARIABLE %s refused (%d %s); session ended",
                    name,
                    reply.code,
                    reply.text[:80],
                )
                metrics.ERRORS.labels("command").inc()
                return
