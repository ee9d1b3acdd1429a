"""The simulated PBX answering an AMI `Originate` like Asterisk does for a click-to-call.

What Asterisk does with `Channel: PJSIP/1001`, `Context`/`Exten`/`Priority`, `Async: true`
(main/manager.c action_originate → ast_pbx_outgoing_exten, recorded in
tests/fixtures/asterisk-traces/click-to-dial-pbx, and the bridge's own action in
click-to-call and click-to-call-unanswered): the Response comes at once ("Originate
successfully queued"); a channel to the agent's device is created with the requested
`ChannelId` as its Uniqueid (and so the call's Linkedid) and rings, dialled by the dial API
(a `DialBegin`/`DialState`/`DialEnd` with only `Dest*` fields: no calling channel); when the
agent answers, `OriginateResponse` (Context/Exten form, no Application/Data) reports it and
the channel runs the dialplan at Context/Exten/Priority, here the outbound context's
`MixMonitor` then `Dial` through the trunk, which the far end answers or not (`DialEnd`
NOANSWER after the Dial's timeout). The agent's Cdr toward the trunk bills from the agent's
own answer, so it includes the far end's ringing. A device that does not answer within
`Timeout` ms is hung up with cause 19 (dial.c's timeout, no `DialEnd`) and ends with
`OriginateResponse` Failure (Reason 3).

manager.c refuses an Originate without the `originate` write class, and with an
`Application` such as System or Exec without `system` too (CVE-2024-42365's neighbourhood):
`check_originate`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.sim.call import CallResult, CallRun
from bridge.sim.channels import Channel
from bridge.sim.model import AmiUser, CallPlan

if TYPE_CHECKING:
    from bridge.sim.pbx import SimPbx

__all__ = ["OriginateRequest", "OriginateTiming", "check_originate", "start_originate"]

# manager.c: applications an Originate may only name with the `system` write class.
SYSTEM_APPS = ("system", "exec", "trysystem", "mixmonitor", "eval", "dbdeltree", "agi")
_DEVICE = re.compile(r"^(?:PJSIP|SIP)/(?P<ext>[A-Za-z0-9_.+-]+)$|^Local/(?P<lext>[^@/]+)@")


@dataclass(frozen=True, slots=True)
class OriginateTiming:
    """How the simulated parties behave: the agent answers after `agent_answer_s`, the far
    end rings `far_ring_s` and talks `talk_s` (the recording: 1 s, 1 s, 3 s); a far end that
    never answers (`far_answers=False`) rings until the Dial's `dial_timeout_s`."""

    agent_answer_s: float = 1.0
    far_ring_s: float = 1.0
    talk_s: float = 3.0
    far_answers: bool = True
    dial_timeout_s: float = 30.0
    # Tests: the far end answers when this is set (after far_ring_s), not before.
    far_answer: asyncio.Event | None = None


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    channel: str
    context: str
    exten: str
    priority: str
    callerid: str
    timeout_ms: int
    channel_id: str
    action_id: str


def check_originate(user: AmiUser, action: dict[str, str]) -> str | None:
    """None when Asterisk would accept the action from `user`, else its error message."""
    if not user.may_run("originate,all"):
        return "Permission denied"
    if not action.get("channel"):
        return "Channel not specified"
    app = action.get("application", "")
    if app:
        if any(word in app.lower() for word in SYSTEM_APPS) and "system" not in user.write:
            return (
                "Originate with certain 'Application' arguments requires the additional"
                " System privilege"
            )
        return "Originate with an Application is not simulated"
    if not action.get("exten") or not action.get("context"):
        return "Context and Exten are required"
    try:
        if int(action.get("timeout", "30000")) <= 0:
            return "Invalid timeout"
    except ValueError:
        return "Invalid timeout"
    return None


def _callerid(text: str) -> tuple[str, str]:
    """`"Name" <1234>` → (1234, Name), as ast_callerid_parse does for the simple forms."""
    m = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', text)
    if m:
        return m.group(2), m.group(1)
    return (text.strip(), "") if text.strip() else ("<unknown>", "<unknown>")


class OriginateRun(CallRun):
    def __init__(self, pbx: SimPbx, request: OriginateRequest, timing: OriginateTiming) -> None:
        plan = CallPlan(caller=request.exten, caller_name="", talk_s=timing.talk_s)
        super().__init__(pbx, plan)
        self.request = request
        self.timing = timing

    def originate_response(self, chan: Channel, ok: bool, reason: str) -> None:
        r = self.request
        self.emit(
            "OriginateResponse",
            "call",
            [("ActionID", r.action_id)] if r.action_id else [],
            [
                ("Response", "Success" if ok else "Failure"),
                ("Channel", chan.name),
                ("Context", r.context),
                ("Exten", r.exten),
                ("Reason", reason),
                ("Uniqueid", chan.uniqueid),
                ("CallerIDNum", chan.cid_num),
                ("CallerIDName", chan.cid_name),
            ],
        )

    async def play(self, ext: str) -> None:
        r, pbx, t = self.request, self.pbx, self.timing
        sfx = pbx.ids.suffix()
        call_id = r.channel_id or pbx.ids.uniqueid()
        chan = Channel(
            name=f"PJSIP/{ext}-{sfx}",
            uniqueid=call_id,
            linkedid=call_id,
            context=r.context,
            exten="",
            created_at=pbx.clock.now(),
        )
        pbx.channel_born(chan)
        self.channels.append(chan)
        self.chan_event("Newchannel", "call", chan)
        num, name = _callerid(r.callerid)
        if r.callerid:
            self.set_callerid(chan, num, name)
        # The Originate's own dial (main/dial.c): no calling channel, only the device.
        self.emit("DialBegin", "call", chan.snapshot("Dest"),
                  [("DialString", r.channel.partition("/")[2])])  # fmt: skip
        pbx.busy.add(ext)
        try:
            self.set_state(chan, 5)  # the agent's phone rings
            self.emit("DialState", "call", chan.snapshot("Dest"), [("DialStatus", "RINGING")])
            if t.agent_answer_s * 1000 >= r.timeout_ms:
                await self.clock.sleep(r.timeout_ms / 1000)
                self.hangup(chan, 19, "User alerting, no answer")
                self.originate_response(chan, False, "3")
                return
            await self.clock.sleep(t.agent_answer_s)
            agent_answer = self.clock.now()
            self.set_state(chan, 6)
            self.originate_response(chan, True, "4")
            self.emit("DialEnd", "call", chan.snapshot("Dest"), [("DialStatus", "ANSWER")])
            chan.exten, chan.priority = r.exten, int(r.priority or "1")
            recording = f"{self.cfg.monitor_dir}/{call_id}.wav"
            self.newexten(chan, "MixMonitor", f"{call_id}.wav,b")
            self.varset(chan, "MIXMONITOR_FILENAME", recording)
            self.chan_event("MixMonitorStart", "call", chan)
            chan.priority += 1
            self.newexten(chan, "Dial", f"PJSIP/{r.exten}@trunk,{t.dial_timeout_s:g}")
            trunk = self.new_channel(f"PJSIP/trunk-{pbx.ids.suffix()}", "from-trunk", r.exten, 0,
                                     call_id)  # fmt: skip
            trunk.cid_num, trunk.cid_name = r.exten, chan.cid_name
            trunk.application, trunk.app_data = "AppDial", "(Outgoing Line)"
            dest = [("DialString", f"{r.exten}@trunk")]
            self.emit("DialBegin", "call", chan.snapshot(), trunk.snapshot("Dest"), dest)
            self.set_state(trunk, 5)
            ringing = [("DialStatus", "RINGING")]
            self.emit("DialState", "call", chan.snapshot(), trunk.snapshot("Dest"), ringing)
            if not t.far_answers:
                await self.clock.sleep(t.dial_timeout_s)
                noanswer = [("DialStatus", "NOANSWER")]
                self.emit("DialEnd", "call", chan.snapshot(), trunk.snapshot("Dest"), noanswer)
                self.hangup(trunk, 0, "Unknown")
                end = self.clock.now()
                self.cdr(chan, r.exten, r.context, trunk.name, "NO ANSWER", self.started,
                         agent_answer, end)  # fmt: skip
                self.hangup(chan, 16, "Normal Clearing")
                return
            await self.clock.sleep(t.far_ring_s)
            if t.far_answer is not None:
                await t.far_answer.wait()
            self.set_state(trunk, 6)
            status = [("DialStatus", "ANSWER")]
            self.emit("DialEnd", "call", chan.snapshot(), trunk.snapshot("Dest"), status)
            bridge = pbx.ids.bridge()
            self.bridge_event("BridgeCreate", bridge, 0, None)
            self.bridge_event("BridgeEnter", bridge, 1, trunk)
            self.bridge_event("BridgeEnter", bridge, 2, chan)
            await self.clock.sleep(t.talk_s)
            end = self.clock.now()
            self.bridge_event("BridgeLeave", bridge, 1, trunk)
            self.hangup(trunk, 16, "Normal Clearing")
            self.bridge_event("BridgeLeave", bridge, 0, chan)
            self.bridge_event("BridgeDestroy", bridge, 0, None)
            # Asterisk bills the agent's channel from its own answer (click-to-call: 2 s billed
            # for about 1 s with the customer), not from the far end's.
            self.cdr(chan, r.exten, r.context, trunk.name, "ANSWERED", self.started,
                     agent_answer, end)  # fmt: skip
            self.hangup(chan, 16, "Normal Clearing")
        finally:
            pbx.busy.discard(ext)


def start_originate(
    pbx: SimPbx, request: OriginateRequest, timing: OriginateTiming
) -> asyncio.Task[CallResult | None] | None:
    """Run the originate in the background; None when the channel is no simulated device."""
    m = _DEVICE.match(request.channel)
    ext = (m.group("ext") or m.group("lext")) if m else None
    if ext is None or ext not in {a.ext for a in pbx.config.agents}:
        return None
    run = OriginateRun(pbx, request, timing)

    async def guarded() -> CallResult | None:
        try:
            await run.play(ext)
        except BaseException:
            run.tear_down()
            raise
        return None

    task = asyncio.ensure_future(guarded())
    pbx._tasks.add(task)  # the PBX's drain() and stop() wait for it like for any call
    task.add_done_callback(pbx._tasks.discard)
    return task
