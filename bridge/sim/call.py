"""One simulated inbound call, event by event, in the order Asterisk 22 emits them.

The shapes and the per-channel order follow tests/fixtures/asterisk-traces: the caller's
channel runs the dialplan (Answer, AGI, MixMonitor, Queue), the queue dials members
(AgentCalled + DialBegin; a ringall loser gets DialEnd CANCEL and `Answered elsewhere`),
the winner is bridged (AgentConnect, BridgeEnter), may blind-transfer the caller to another
extension (BlindTransfer, then a plain Dial with no queue events), and the call ends with
AgentComplete, Cdr per channel and Hangup. With `Local` technology every party is a `;1/;2`
pair as in the recordings; with `PJSIP` each party is one channel.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bridge.sim.agi_client import run_agi
from bridge.sim.channels import UNKNOWN, Channel
from bridge.sim.clock import Timeline, cdr_seconds, queue_seconds
from bridge.sim.model import CallPlan, SimQueue
from bridge.sim.wire import agi_reply, split_agi_args

if TYPE_CHECKING:
    from bridge.sim.pbx import SimPbx

log = logging.getLogger(__name__)

Pairs = list[tuple[str, str]]


def _bridge_fields(bridge_id: str, count: int) -> list[tuple[str, str]]:
    return [
        ("BridgeUniqueid", bridge_id),
        ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", UNKNOWN),
        ("BridgeName", UNKNOWN),
        ("BridgeNumChannels", str(count)),
        ("BridgeVideoSourceMode", "none"),
    ]


@dataclass(slots=True)
class Leg:
    """One agent party: `chan` is what the queue dials (DestChannel); `phone` the Local ;2 half."""

    ext: str
    chan: Channel
    phone: Channel | None
    rang_at: float
    answered_at: float | None = None


@dataclass(slots=True)
class CallResult:
    linkedid: str
    queue: str
    outcome: str  # answered | abandoned | unanswered
    agents: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)


def _fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


class CallRun:
    def __init__(self, pbx: SimPbx, plan: CallPlan, at: float | None = None) -> None:
        self.pbx = pbx
        self.plan = plan
        self.cfg = pbx.config
        self.local = self.cfg.technology == "Local"
        self.clock = Timeline(pbx.clock, at)  # every moment below is the script's
        self.started = self.clock.now()
        self.origin: Channel | None = None
        self.caller: Channel
        self.queue_name = ""
        self.result: CallResult
        self.channels: list[Channel] = []  # every channel of this call, in creation order
        self.taken: set[str] = set()  # agent extensions this call holds busy

    # --- emitting ---------------------------------------------------------------------
    def emit(self, event: str, privilege: str, *parts: Pairs) -> None:
        fields: Pairs = [("Event", event), ("Privilege", f"{privilege},all")]
        for part in parts:
            fields.extend(part)
        self.pbx.emit(fields)

    def chan_event(self, event: str, privilege: str, chan: Channel, *extra: Pairs) -> None:
        self.emit(event, privilege, chan.snapshot(), *extra)

    def newexten(self, chan: Channel, app: str, data: str) -> None:
        chan.application, chan.app_data = app, data
        self.chan_event(
            "Newexten",
            "dialplan",
            chan,
            [("Extension", chan.exten), ("Application", app), ("AppData", data)],
        )

    def varset(self, chan: Channel, name: str, value: str) -> None:
        chan.variables[name] = value
        self.chan_event("VarSet", "dialplan", chan, [("Variable", name), ("Value", value)])

    def set_state(self, chan: Channel, state: int) -> None:
        chan.state = state
        self.chan_event("Newstate", "call", chan)

    def hangup(self, chan: Channel, cause: int, text: str) -> None:
        self.chan_event("Hangup", "call", chan, [("Cause", str(cause)), ("Cause-txt", text)])
        self.pbx.channel_gone(chan)

    def bridge_event(self, event: str, bridge_id: str, count: int, chan: Channel | None) -> None:
        if chan is not None and event in {"BridgeEnter", "BridgeLeave"}:
            chan.bridge_id = bridge_id if event == "BridgeEnter" else ""
        self.emit(event, "call", _bridge_fields(bridge_id, count), chan.snapshot() if chan else [])

    def cdr(
        self,
        chan: Channel,
        destination: str,
        dest_context: str,
        dest_chan: str,
        disposition: str,
        start: float,
        answer: float | None,
        end: float,
    ) -> None:
        billable = 0 if answer is None else cdr_seconds(answer, end)
        self.emit(
            "Cdr",
            "cdr",
            [
                ("AccountCode", ""),
                ("Source", self.plan.caller),
                ("Destination", destination),
                ("DestinationContext", dest_context),
                ("CallerID", f'"{self.plan.caller_name}" <{self.plan.caller}>'),
                ("Channel", chan.name),
                ("DestinationChannel", dest_chan),
                ("LastApplication", chan.application or "Queue"),
                ("LastData", chan.app_data),
                ("StartTime", _fmt_time(start)),
                ("AnswerTime", _fmt_time(answer)),
                ("EndTime", _fmt_time(end)),
                ("Duration", str(cdr_seconds(start, end))),
                ("BillableSeconds", str(billable)),
                ("Disposition", disposition),
                ("AMAFlags", "DOCUMENTATION"),
                ("UniqueID", chan.uniqueid),
                ("UserField", ""),
            ],
        )

    # --- channels -----------------------------------------------------------------------
    def new_channel(
        self, name: str, context: str, exten: str, state: int, linkedid: str
    ) -> Channel:
        uniqueid = self.pbx.ids.uniqueid()
        chan = Channel(
            name=name,
            uniqueid=uniqueid,
            linkedid=linkedid or uniqueid,
            context=context,
            exten=exten,
            state=state,
            created_at=self.pbx.clock.now(),
        )
        self.pbx.channel_born(chan)
        self.channels.append(chan)
        self.chan_event("Newchannel", "call", chan)
        return chan

    def set_callerid(self, chan: Channel, num: str, name: str) -> None:
        chan.cid_num, chan.cid_name = num, name
        self.chan_event(
            "NewCallerid",
            "call",
            chan,
            [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")],
        )

    def set_connected(self, chan: Channel, num: str, name: str) -> None:
        chan.connected_num, chan.connected_name = num, name
        self.chan_event("NewConnectedLine", "call", chan)

    def local_bridge(self, one: Channel, two: Channel) -> None:
        self.emit(
            "LocalBridge",
            "call",
            one.snapshot("LocalOne"),
            two.snapshot("LocalTwo"),
            [("Context", two.context), ("Exten", two.exten), ("LocalOptimization", "Yes")],
        )

    def interface(self, ext: str) -> str:
        return f"Local/{ext}@phones/n" if self.local else f"PJSIP/{ext}"

    def new_leg(self, ext: str, app: str = "AppQueue") -> Leg:
        """A dialled agent channel. As app_queue/app_dial leave it on a real Asterisk 22
        (restart/coreshowchannels-*.ami.log): Application `AppQueue` (`AppDial` for a Dial)
        with `(Outgoing Line)`, the caller's Exten and caller ID on it."""
        sfx = self.pbx.ids.suffix()
        link = self.caller.linkedid
        if self.local:
            chan = self.new_channel(f"Local/{ext}@phones-{sfx};1", "phones", ext, 0, link)
            phone = self.new_channel(f"Local/{ext}@phones-{sfx};2", "phones", ext, 4, link)
            for half in (chan, phone):
                half.cid_num, half.cid_name = self.plan.caller, self.plan.caller_name or UNKNOWN
            self.set_callerid(phone, self.plan.caller, self.plan.caller_name)
            self.set_connected(phone, self.plan.caller, self.plan.caller_name)
            self.local_bridge(chan, phone)
        else:
            chan = self.new_channel(f"PJSIP/{ext}-{sfx}", "phones", ext, 0, link)
            chan.cid_num, chan.cid_name = self.plan.caller, self.plan.caller_name or UNKNOWN
            phone = None
        chan.connected_num, chan.connected_name = self.plan.caller, self.plan.caller_name
        chan.application, chan.app_data, chan.exten = app, "(Outgoing Line)", self.plan.did
        return Leg(ext, chan, phone, self.clock.now())

    # --- the call -----------------------------------------------------------------------
    async def run(self) -> CallResult:
        try:
            return await self._run()
        except BaseException:
            self.tear_down()
            raise

    def tear_down(self) -> None:
        """The PBX stops mid-call (or the script failed): every channel still up hangs up, as
        when Asterisk shuts down (`Hangup` cause 16), so whoever watches AMI sees the call end."""
        for chan in reversed(self.channels):
            if chan.name in self.pbx.channels:
                self.hangup(chan, 16, "Normal Clearing")
        for chan in self.channels:
            for entries in self.pbx.queue_entries.values():
                if chan in entries:
                    entries.remove(chan)

    async def _run(self) -> CallResult:
        plan, cfg = self.plan, self.cfg
        sfx = self.pbx.ids.suffix()
        if self.local:
            base = f"Local/{plan.did}@{cfg.context}-{sfx}"
            self.origin = self.new_channel(f"{base};1", cfg.context, plan.did, 0, "")
            self.caller = self.new_channel(
                f"{base};2", cfg.context, plan.did, 4, self.origin.uniqueid
            )
            self.newexten(self.origin, "AppDial2", "(Outgoing Line)")
            # The lab driver's Originate runs Wait(60) on it once answered (no Newexten).
            self.origin.application, self.origin.app_data = "Wait", "60"
            for chan in (self.origin, self.caller):
                self.set_callerid(chan, plan.caller, plan.caller_name)
                self.set_connected(chan, plan.caller, plan.caller_name)
            self.local_bridge(self.origin, self.caller)
            self.emit(
                "DialBegin",
                "call",
                self.origin.snapshot("Dest"),
                [("DialString", f"{plan.did}@{cfg.context}")],
            )
        else:
            self.caller = self.new_channel(f"PJSIP/trunk-{sfx}", cfg.context, plan.did, 4, "")
            self.caller.cid_num, self.caller.cid_name = plan.caller, plan.caller_name or UNKNOWN
            self.caller.connected_num, self.caller.connected_name = plan.caller, plan.caller_name
        self.result = CallResult(self.caller.linkedid, "", "unanswered")
        caller = self.caller
        self.newexten(caller, "NoOp", f'inbound "{plan.caller_name}" <{plan.caller}> -> {plan.did}')
        caller.priority = 2
        self.newexten(caller, "Answer", "")
        self.set_state(caller, 6)
        answered_at = self.clock.now()
        if self.origin is not None:
            self.set_state(self.origin, 6)
            self.emit("DialEnd", "call", self.origin.snapshot("Dest"), [("DialStatus", "ANSWER")])
        self.origin_answered = answered_at

        caller.priority = 3
        request = f"agi://{cfg.agi_host}:{cfg.agi_port}/{cfg.agi_script}"
        self.newexten(caller, "AGI", request)
        status = await run_agi(
            cfg.agi_host,
            cfg.agi_port,
            self.agi_env(request),
            self.agi_answer,
            timeout_s=cfg.agi_timeout_s,
        )
        self.varset(caller, "AGISTATUS", status)

        caller.priority = 4
        wanted = caller.variables.get("BRIDGE_QUEUE", "")
        queue = cfg.queue(wanted) or cfg.queue(cfg.fallback_queue)
        self.queue_name = queue.name if queue else (wanted or cfg.fallback_queue)
        self.result.queue = self.queue_name
        self.newexten(caller, "Set", f"QUEUE={self.queue_name}")
        self.varset(caller, "QUEUE", self.queue_name)
        caller.priority = 5
        recording = caller.variables.get("BRIDGE_RECORDING") or f"{caller.uniqueid}.wav"
        recording = recording.replace("/", "_")
        self.newexten(caller, "MixMonitor", f"{recording},b")
        self.varset(caller, "MIXMONITOR_FILENAME", f"{cfg.monitor_dir.rstrip('/')}/{recording}")
        self.chan_event("MixMonitorStart", "call", caller)
        caller.priority = 6
        self.newexten(caller, "Queue", f"{self.queue_name},t,,,30")
        if queue is None or not queue.members:
            log.warning("simulated PBX has no queue %r; caller hangs up", self.queue_name)
            await self.clock.sleep(1.0)
            self.finish_unjoined()
            return self.result
        await self.in_queue(queue)
        self.result.variables = dict(caller.variables)
        return self.result

    def agi_env(self, request: str) -> list[tuple[str, str]]:
        c = self.caller
        return [
            ("network", "yes"),
            ("network_script", self.cfg.agi_script),
            ("request", request),
            ("channel", c.name),
            ("language", "en"),
            ("type", "Local" if self.local else "PJSIP"),
            ("uniqueid", c.uniqueid),
            ("version", "22.11.0"),
            ("callerid", self.plan.caller),
            ("calleridname", self.plan.caller_name or "unknown"),
            ("callingpres", "0"),
            ("callingani2", "0"),
            ("callington", "0"),
            ("callingtns", "0"),
            ("dnid", "unknown" if self.local else self.plan.did),
            ("rdnis", "unknown"),
            ("context", c.context),
            ("extension", c.exten),
            ("priority", str(c.priority)),
            ("enhanced", "0.0"),
            ("accountcode", ""),
            ("threadid", str(140407557895872 + self.pbx.ids_counter())),
        ]

    async def agi_answer(self, line: str) -> bytes:
        """Asterisk's reply to one FastAGI command, with the AGIExec events around it."""
        caller = self.caller
        command_id = str(self.pbx.rng.randint(100_000_000, 2_000_000_000))
        head = [("CommandId", command_id), ("Command", line)]
        self.chan_event("AGIExecStart", "agi", caller, head)
        try:
            args = split_agi_args(line)
        except Exception:
            args = []
        words = [a.upper() for a in args[:2]]
        reply: bytes
        if words == ["SET", "VARIABLE"] and len(args) >= 4:
            self.varset(caller, args[2], args[3])
            reply = agi_reply(200, "1")
        elif words == ["GET", "VARIABLE"] and len(args) >= 3:
            value = self.channel_function(args[2])
            reply = agi_reply(200, "0") if value is None else agi_reply(200, "1", value)
        elif words[:1] in (["NOOP"], ["VERBOSE"], ["ANSWER"]):
            reply = agi_reply(200, "0" if words[:1] != ["VERBOSE"] else "1")
        else:
            reply = b"510 Invalid or unknown command\n"
        code = reply.split(b" ", 1)[0].decode()
        self.chan_event(
            "AGIExecEnd",
            "agi",
            caller,
            head,
            [("ResultCode", code), ("Result", "Success" if code == "200" else "Failure")],
        )
        return reply

    def channel_function(self, name: str) -> str | None:
        c = self.caller
        known = {
            "CHANNEL(linkedid)": c.linkedid,
            "CHANNEL(uniqueid)": c.uniqueid,
            "CHANNEL(name)": c.name,
            "UNIQUEID": c.uniqueid,
            "CALLERID(num)": self.plan.caller,
            "CALLERID(name)": self.plan.caller_name,
            "EXTEN": c.exten,
        }
        return known.get(name, c.variables.get(name))

    # --- queue --------------------------------------------------------------------------
    def queue_fields(self, position: int, count: int) -> Pairs:
        return [("Queue", self.queue_name), ("Position", str(position)), ("Count", str(count))]

    async def in_queue(self, queue: SimQueue) -> None:
        plan, pbx, caller = self.plan, self.pbx, self.caller
        position = pbx.queue_join(queue.name, caller)
        self.chan_event("QueueCallerJoin", "agent", caller, self.queue_fields(position, position))
        joined = self.clock.now()
        give_up = plan.abandon_after_s if plan.abandon_after_s is not None else self.cfg.max_wait_s
        abandons = plan.abandon_after_s is not None
        deadline = joined + give_up
        targets = await pbx.take_members(queue, plan.first_member, pbx.clock, give_up)
        if targets is not None:
            # Agents are taken no earlier than the other calls' scripts freed them, however
            # the machine ordered things; agents freed after this caller's deadline came
            # too late.
            freed = pbx.freed_since(targets)
            if freed > deadline:
                for ext in targets:
                    pbx.release(ext)
                targets = None
            else:
                self.clock.catch_up(freed)
        if targets is None:  # nobody became free in time
            self.clock.catch_up(deadline)
            self.leave_waiting(queue, joined, abandoned=abandons)
            return
        legs = [self.ring(leg_ext, queue) for leg_ext in targets]
        for leg in legs:
            self.ring_state(leg)
        winner = min(legs, key=lambda leg: plan.ring_for(leg.ext))
        ring_s = plan.ring_for(winner.ext)
        left = give_up - (self.clock.now() - joined)
        if left < ring_s:
            await self.clock.sleep(max(0.0, left))
            self.leave_ringing(queue, legs, joined, abandoned=abandons)
            return
        await self.clock.sleep(ring_s)
        await self.connected(queue, winner, [leg for leg in legs if leg is not winner], joined)

    def ring(self, ext: str, queue: SimQueue) -> Leg:
        leg = self.new_leg(ext)
        agent = self.cfg.agent(ext)
        self.emit(
            "AgentCalled",
            "agent",
            self.caller.snapshot(),
            leg.chan.snapshot("Dest"),
            [("Queue", queue.name), ("Interface", self.interface(ext)), ("MemberName", agent.name)],
        )
        self.emit(
            "DialBegin",
            "call",
            self.caller.snapshot(),
            leg.chan.snapshot("Dest"),
            [("DialString", self.interface(ext))],
        )
        return leg

    def ring_state(self, leg: Leg) -> None:
        if leg.phone is not None:
            self.newexten(leg.phone, "Ringing", "")
            leg.phone.priority = 4  # lab-config [phones]: Ringing, Set, Set, Wait(ring)
            self.newexten(leg.phone, "Wait", f"{self.plan.ring_for(leg.ext):g}")
        self.set_state(leg.chan, 5)
        self.emit(
            "DialState",
            "call",
            self.caller.snapshot(),
            leg.chan.snapshot("Dest"),
            [("DialStatus", "RINGING")],
        )

    def dial_end(self, leg: Leg, status: str) -> None:
        self.emit(
            "DialEnd",
            "call",
            self.caller.snapshot(),
            leg.chan.snapshot("Dest"),
            [("DialStatus", status)],
        )

    def member_fields(self, queue: str, ext: str) -> Pairs:
        return [
            ("Queue", queue),
            ("Interface", self.interface(ext)),
            ("MemberName", self.cfg.agent(ext).name),
        ]

    async def connected(self, queue: SimQueue, leg: Leg, losers: list[Leg], joined: float) -> None:
        pbx, caller, now = self.pbx, self.caller, self.clock.now()
        leg.answered_at = now
        pbx.talking.add(leg.ext)
        if leg.phone is not None:
            self.handset_answers(leg.phone, self.plan.talk_s)
        self.set_state(leg.chan, 6)
        self.dial_end(leg, "ANSWER")
        for loser in losers:
            self.dial_end(loser, "CANCEL")
            self.dial_end(loser, "CANCEL")
            self.hangup(loser.chan, 26, "Answered elsewhere")
            pbx.release(loser.ext, now)
        position = pbx.queue_leave(queue.name, caller)
        count = len(pbx.queue_entries.get(queue.name, []))
        self.chan_event("QueueCallerLeave", "agent", caller, self.queue_fields(position, count))
        hold = str(queue_seconds(joined, now))
        ring = str(queue_seconds(leg.rang_at, now))
        self.emit(
            "AgentConnect",
            "agent",
            caller.snapshot(),
            leg.chan.snapshot("Dest"),
            self.member_fields(queue.name, leg.ext),
            [("HoldTime", hold), ("RingTime", ring)],
        )
        bridge = pbx.ids.bridge()
        self.bridge_event("BridgeCreate", bridge, 0, None)
        for loser in losers:
            if loser.phone is not None:
                self.cdr(
                    loser.phone, loser.ext, "phones", "", "NO ANSWER", loser.rang_at, None, now
                )
        self.bridge_event("BridgeEnter", bridge, 1, leg.chan)
        self.bridge_event("BridgeEnter", bridge, 2, caller)
        self.varset(leg.chan, "BRIDGEPEER", caller.name)
        self.varset(caller, "BRIDGEPEER", leg.chan.name)
        for loser in losers:
            if loser.phone is not None:
                self.hangup(loser.phone, 26, "Answered elsewhere")
        self.result.outcome = "answered"
        self.result.agents.append(leg.ext)
        cdrs: list[tuple[Leg, float]] = [(loser, 0.0) for loser in losers]

        plan, transfer = self.plan, self.plan.transfer
        talk_s = plan.talk_s
        if transfer is not None:
            await self.clock.sleep(transfer.after_s)
            target = transfer.to_ext or pbx.free_agent(exclude=leg.ext)
            if target and target != leg.ext and pbx.try_take(target):
                new_leg = self.blind_transfer(queue, leg, bridge, hold, target)
                cdrs.append((leg, self.clock.now()))
                await self.clock.sleep(transfer.ring_s)
                self.transfer_answered(new_leg)
                bridge2 = pbx.ids.bridge()
                self.bridge_event("BridgeCreate", bridge2, 0, None)
                self.bridge_event("BridgeEnter", bridge2, 1, new_leg.chan)
                self.bridge_event("BridgeEnter", bridge2, 2, caller)
                self.result.agents.append(new_leg.ext)
                await self.clock.sleep(transfer.talk_s)
                end = self.clock.now()
                self.agent_hangs_up(new_leg, bridge2, end)
                cdrs.append((new_leg, end))
                self.bridge_event("BridgeLeave", bridge2, 0, caller)
                self.bridge_event("BridgeDestroy", bridge2, 0, None)
                self.end_caller(cdrs, end)
                pbx.release(new_leg.ext, end)
                return
            talk_s = max(0.0, talk_s - transfer.after_s)  # nobody free: the agent keeps the call
        await self.clock.sleep(talk_s)
        end = self.clock.now()
        self.agent_hangs_up(leg, bridge, end)
        self.emit(
            "AgentComplete",
            "agent",
            caller.snapshot(),
            leg.chan.snapshot("Dest"),
            self.member_fields(queue.name, leg.ext),
            [("HoldTime", hold), ("TalkTime", str(queue_seconds(now, end))), ("Reason", "agent")],
        )
        self.bridge_event("BridgeLeave", bridge, 0, caller)
        self.bridge_event("BridgeDestroy", bridge, 0, None)
        cdrs.append((leg, end))
        self.end_caller(cdrs, end)
        pbx.release(leg.ext, end)

    def agent_hangs_up(self, leg: Leg, bridge: str, end: float) -> None:
        if leg.phone is not None:
            self.newexten(leg.phone, "Hangup", "")
            self.cdr(
                leg.phone, leg.ext, "phones", "", "ANSWERED", leg.rang_at, leg.answered_at, end
            )
            self.hangup(leg.phone, 16, "Normal Clearing")
        self.chan_event("HangupRequest", "call", leg.chan, [("Cause", "16")])
        self.bridge_event("BridgeLeave", bridge, 1, leg.chan)
        self.hangup(leg.chan, 16, "Normal Clearing")

    def blind_transfer(self, queue: SimQueue, leg: Leg, bridge: str, hold: str, to_ext: str) -> Leg:
        caller = self.caller
        self.chan_event("Unhold", "call", leg.chan)
        self.emit(
            "BlindTransfer",
            "call",
            [("Result", "Success")],
            leg.chan.snapshot("Transferer"),
            caller.snapshot("Transferee"),
            _bridge_fields(bridge, 2),
            [("IsExternal", "Yes"), ("Context", "internal"), ("Extension", to_ext)],
        )
        self.bridge_event("BridgeLeave", bridge, 1, caller)
        new_leg = self.new_leg(to_ext, "AppDial")
        dial = f"{to_ext}@phones" if self.local else to_ext
        self.emit(
            "DialBegin",
            "call",
            caller.snapshot(),
            new_leg.chan.snapshot("Dest"),
            [("DialString", dial)],
        )
        end = self.clock.now()
        self.bridge_event("BridgeLeave", bridge, 0, leg.chan)
        self.hangup(leg.chan, 16, "Normal Clearing")
        if leg.phone is not None:
            self.hangup(leg.phone, 16, "Normal Clearing")
            self.cdr(
                leg.phone, leg.ext, "phones", "", "ANSWERED", leg.rang_at, leg.answered_at, end
            )
        talk = str(queue_seconds(leg.answered_at or end, end))
        self.emit(
            "AgentComplete",
            "agent",
            caller.snapshot(),
            self.member_fields(queue.name, leg.ext),
            [("HoldTime", hold), ("TalkTime", talk), ("Reason", "transfer")],
        )
        self.bridge_event("BridgeDestroy", bridge, 0, None)
        self.pbx.release(leg.ext, end)
        self.ring_state(new_leg)
        return new_leg

    def handset_answers(self, phone: Channel, talk_s: float) -> None:
        phone.priority = 5  # lab-config [phones]: Answer, then Wait(talk)
        self.newexten(phone, "Answer", "")
        self.set_state(phone, 6)
        phone.priority = 6
        self.newexten(phone, "Wait", f"{talk_s:g}")

    def transfer_answered(self, leg: Leg) -> None:
        leg.answered_at = self.clock.now()
        self.pbx.talking.add(leg.ext)
        if leg.phone is not None:
            transfer = self.plan.transfer
            self.handset_answers(leg.phone, transfer.talk_s if transfer else self.plan.talk_s)
        self.set_state(leg.chan, 6)
        self.dial_end(leg, "ANSWER")

    def end_caller(self, cdrs: list[tuple[Leg, float]], end: float) -> None:
        caller, origin = self.caller, self.origin
        if origin is not None:
            self.cdr(
                origin,
                self.plan.did,
                self.cfg.context,
                "",
                "ANSWERED",
                self.started,
                self.origin_answered,
                end,
            )
            self.hangup(origin, 16, "Normal Clearing")
        for leg, leg_end in cdrs:
            answered = leg.answered_at if leg_end else None
            self.cdr(
                caller,
                leg.ext,
                "phones",
                leg.chan.name,
                "ANSWERED" if answered else "NO ANSWER",
                self.started,
                answered,
                leg_end or end,
            )
        self.hangup(caller, 16, "Normal Clearing")

    def leave_ringing(
        self, queue: SimQueue, legs: list[Leg], joined: float, *, abandoned: bool
    ) -> None:
        pbx, now = self.pbx, self.clock.now()
        origin = self.origin
        if abandoned:
            self.caller_hangs_up(now)
        for leg in legs:
            self.dial_end(leg, "CANCEL")
            self.dial_end(leg, "CANCEL")
            self.hangup(leg.chan, 0, "Unknown")
        if origin is not None and abandoned:
            self.hangup(origin, 0, "Unknown")
        self.finish_queue(queue, joined, abandoned=abandoned)
        for leg in legs:
            if leg.phone is not None:
                self.cdr(leg.phone, leg.ext, "phones", "", "FAILED", leg.rang_at, None, now)
                self.hangup(leg.phone, 0, "Unknown")
            pbx.release(leg.ext, now)

    def leave_waiting(self, queue: SimQueue, joined: float, *, abandoned: bool) -> None:
        if abandoned:
            self.caller_hangs_up(self.clock.now())
            if self.origin is not None:
                self.hangup(self.origin, 0, "Unknown")
        self.finish_queue(queue, joined, abandoned=abandoned)

    def caller_hangs_up(self, now: float) -> None:
        """The caller's side asks for a hangup while it waits (its BYE, or the Local ;1 half
        going away), before the queue notices; a queue timeout has no such request. The
        Local ;1 half's own record closes at that moment."""
        cause = "0" if self.local else "16"
        self.chan_event("HangupRequest", "call", self.caller, [("Cause", cause)])
        origin = self.origin
        if origin is not None:
            self.cdr(
                origin,
                self.plan.did,
                self.cfg.context,
                "",
                "ANSWERED",
                self.started,
                self.origin_answered,
                now,
            )

    def finish_queue(self, queue: SimQueue, joined: float, *, abandoned: bool) -> None:
        """The caller leaves the queue unanswered: hung up (abandon) or Queue() timed out.

        Asterisk reports both with QueueCallerAbandon (app_queue's record_abandoned runs on
        a timeout too); only a real abandon is preceded by the caller's HangupRequest.
        """
        pbx, caller, now = self.pbx, self.caller, self.clock.now()
        position = pbx.queue_position(queue.name, caller)
        if abandoned:
            self.result.outcome = "abandoned"
        self.chan_event(
            "QueueCallerAbandon",
            "agent",
            caller,
            [
                ("Queue", queue.name),
                ("Position", str(position)),
                ("OriginalPosition", str(position)),
                ("HoldTime", str(queue_seconds(joined, now))),
            ],
        )
        pbx.queue_leave(queue.name, caller)
        count = len(pbx.queue_entries.get(queue.name, []))
        self.chan_event("QueueCallerLeave", "agent", caller, self.queue_fields(position, count))
        self.cdr(
            caller, self.plan.did, self.cfg.context, "", "NO ANSWER",
            self.started, self.origin_answered, now,
        )  # fmt: skip
        cause = (0, "Unknown") if abandoned and self.local else (16, "Normal Clearing")
        if not abandoned:
            caller.priority = 7
            self.newexten(caller, "Hangup", "")
            if self.origin is not None:
                self.hangup(self.origin, 16, "Normal Clearing")
        self.hangup(caller, *cause)

    def finish_unjoined(self) -> None:
        now = self.clock.now()
        self.cdr(
            self.caller,
            self.plan.did,
            self.cfg.context,
            "",
            "NO ANSWER",
            self.started,
            None,
            now,
        )
        if self.origin is not None:
            self.hangup(self.origin, 16, "Normal Clearing")
        self.hangup(self.caller, 16, "Normal Clearing")
