"""AMI server of the simulated PBX (asyncio, meant for loopback).

Speaks what Asterisk 22's manager does on the wire: the banner
`Asterisk Call Manager/9.0.0`, `Login` (then `FullyBooted`), `Logoff`, `Ping` → `Pong`,
`Events`, and the list actions `CoreShowChannels` and `QueueStatus` (a Response with
`EventList: start`, one event per item, then a `...Complete` event with `ListItems`).
Every response and list event echoes the action's `ActionID`. Events go to each logged-in
session whose user may read the event's class (manager.conf `read=`): a `read = call,agent,cdr`
user never sees `dialplan` (Newexten, VarSet) or `agi` events, as in the least-privilege trace.

A client that stops reading is disconnected once its queue of unsent messages is full,
instead of growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable, Sequence

from bridge.errors import AmiProtocolError
from bridge.sim.model import AmiUser
from bridge.sim.originate import (
    OriginateRequest,
    OriginateTiming,
    check_originate,
    start_originate,
)
from bridge.sim.pbx import SimPbx
from bridge.sim.wire import ActionParser, encode_message
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
# (action, synopsis, authority) as Asterisk 22 registers a few of them (manager.c, app_queue.c).
ACTIONS = (
    ("Login", "Login Manager.", ""),
    ("Logoff", "Logoff Manager.", ""),
    ("Ping", "Keepalive command.", ""),
    ("Events", "Control Event Flow.", ""),
    ("ListCommands", "List available manager commands.", ""),
    ("QueueStatus", "Show queue status.", ""),
    ("CoreShowChannels", "List currently active channels.", "system,reporting,all"),
    ("Originate", "Originate a call.", "originate,all"),
    ("Hangup", "Hangup channel.", "system,call,all"),
    ("Command", "Execute Asterisk CLI Command.", "command,all"),
    ("GetConfig", "Retrieve configuration.", "system,config,all"),
    ("UpdateConfig", "Update basic configuration.", "config,all"),
)
Fields = list[tuple[str, str]]


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class _Session:
    def __init__(self, server: AmiServer, writer: asyncio.StreamWriter, limit: int) -> None:
        self.server = server
        self.writer = writer
        self.user: AmiUser | None = None
        self.events = True
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=limit)
        self.closed = False
        self.aborted = False

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.outbox.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("AMI client not reading; disconnecting it")
            self.close()

    def close(self) -> None:
        """Cut the connection now (unsent messages are lost)."""
        if not self.aborted:
            self.closed = self.aborted = True
            self.writer.transport.abort()

    def finish(self) -> None:
        """Send what is queued, then close (Logoff, failed Login)."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.outbox.put_nowait(None)

    async def pump(self) -> None:
        """Writes what is queued, in order; what queued up meanwhile goes in one write (a
        socket write per event was a tenth of a busy simulator's CPU)."""
        while True:
            data = await self.outbox.get()
            if data is None:
                break
            chunks = [data]
            finished = False
            while not self.outbox.empty() and len(chunks) < 512:
                more = self.outbox.get_nowait()
                if more is None:
                    finished = True
                    break
                chunks.append(more)
            self.writer.write(b"".join(chunks))
            await self.writer.drain()
            if finished:
                break


class AmiServer:
    def __init__(
        self,
        pbx: SimPbx,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Sequence[AmiUser] | None = None,
        outbox_limit: int = 10_000,
    ) -> None:
        self.pbx = pbx
        self.host = host
        self.requested_port = port
        self.users = {u.username: u for u in (users or pbx.config.ami_users)}
        self.outbox_limit = outbox_limit
        self.sessions: set[_Session] = set()
        self.actions_seen: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.originate_timing = OriginateTiming()  # how click-to-call parties behave

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.requested_port)
        self._unsubscribe = self.pbx.subscribe(self._broadcast)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._server is not None:
            self._server.close()
        self.drop_clients()
        # Aborted connections end their handlers (a read returns EOF); cancelling a handler
        # task instead would make asyncio log its CancelledError as an error.
        handlers = list(self._handlers)
        if handlers:
            _, late = await asyncio.wait(handlers, timeout=5)
            await cancel_and_wait(*late)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AmiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def drop_clients(self) -> None:
        """Cut every client connection (as a PBX restart or a network fault would)."""
        for session in list(self.sessions):
            session.close()

    def _broadcast(self, privilege: str, data: bytes) -> None:
        for session in list(self.sessions):
            if session.user and session.events and session.user.may_read(privilege):
                session.send(data)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        session = _Session(self, writer, self.outbox_limit)
        self.sessions.add(session)
        pump = asyncio.ensure_future(session.pump())
        parser = ActionParser()
        try:
            session.send(BANNER)
            while not session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                for action in parser.feed(data):
                    self._dispatch(session, action)
                    if session.closed:
                        break
        except (AmiProtocolError, ConnectionError) as exc:
            log.info("AMI client dropped: %s", exc)
        finally:
            self.sessions.discard(session)
            if not session.closed:
                session.finish()
            if not session.aborted:
                with contextlib.suppress(TimeoutError, ConnectionError, asyncio.CancelledError):
                    async with asyncio.timeout(5):
                        await asyncio.shield(pump)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await pump
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    # --- actions ----------------------------------------------------------------------------
    def _dispatch(self, session: _Session, action: dict[str, str]) -> None:
        self.actions_seen.append(action)
        name = action.get("action", "").lower()
        aid: Fields = [("ActionID", action["actionid"])] if "actionid" in action else []
        if not name:
            session.send(
                encode_message(
                    [("Response", "Error"), *aid, ("Message", "Missing action in request")]
                )
            )
            return
        if name == "login":
            self._login(session, action, aid)
            return
        if session.user is None:
            session.send(
                encode_message([("Response", "Error"), *aid, ("Message", "Permission denied")])
            )
            return
        if name == "logoff":
            session.send(
                encode_message(
                    [("Response", "Goodbye"), *aid, ("Message", "Thanks for all the fish.")]
                )
            )
            session.finish()
            return
        if name == "ping":
            now = f"{self.pbx.clock.now():.6f}"
            session.send(
                encode_message(
                    [("Response", "Success"), *aid, ("Ping", "Pong"), ("Timestamp", now)]
                )
            )
        elif name == "events":
            mask = action.get("eventmask", "on").lower()
            session.events = mask not in {"off", "no", "false", "0"}
            session.send(
                encode_message(
                    [("Response", "Success"), *aid, ("Events", "On" if session.events else "Off")]
                )
            )
        elif name == "coreshowchannels":
            self._core_show_channels(session, aid)
        elif name == "queuestatus":
            self._queue_status(session, aid, action.get("queue", ""))
        elif name == "listcommands":
            self._list_commands(session, aid)
        elif name == "queuepause":
            self._queue_pause(session, action, aid)
        elif name == "originate":
            self._originate(session, action, aid)
        else:
            session.send(
                encode_message(
                    [("Response", "Error"), *aid, ("Message", "Invalid/unknown command")]
                )
            )

    def _originate(self, session: _Session, action: dict[str, str], aid: Fields) -> None:
        """manager.c action_originate, Async: queued at once, the call runs on its own."""
        assert session.user is not None
        refused = check_originate(session.user, action)
        request = None
        if refused is None:
            request = OriginateRequest(
                channel=action["channel"],
                context=action["context"],
                exten=action["exten"],
                priority=action.get("priority", "1"),
                callerid=action.get("callerid", ""),
                timeout_ms=int(action.get("timeout", "30000")),
                channel_id=action.get("channelid", ""),
                action_id=action.get("actionid", ""),
            )
            if start_originate(self.pbx, request, self.originate_timing) is None:
                refused = "Originate failed"
        if refused is not None:
            session.send(encode_message([("Response", "Error"), *aid, ("Message", refused)]))
            return
        session.send(
            encode_message(
                [("Response", "Success"), *aid, ("Message", "Originate successfully queued")]
            )
        )

    def _list_commands(self, session: _Session, aid: Fields) -> None:
        """manager.c action_listcommands: each action the user's `write` allows, with its
        authority; `<none>` for those anyone may run."""
        assert session.user is not None
        user = session.user
        items = [
            (action, f"{synopsis} (Priv: {authority or '<none>'})")
            for action, synopsis, authority in ACTIONS
            if user.may_run(authority)
        ]
        session.send(encode_message([("Response", "Success"), *aid, *items]))

    def _login(self, session: _Session, action: dict[str, str], aid: Fields) -> None:
        user = self.users.get(action.get("username", ""))
        secret = action.get("secret", "")
        if user is None or not hmac.compare_digest(user.secret.encode(), secret.encode()):
            session.send(
                encode_message([("Response", "Error"), *aid, ("Message", "Authentication failed")])
            )
            session.finish()  # Asterisk ends the session after a failed login
            return
        session.user = user
        events = action.get("events", "on").lower()
        session.events = events not in {"off", "no", "false", "0"}
        session.send(
            encode_message([("Response", "Success"), *aid, ("Message", "Authentication accepted")])
        )
        if session.events and user.may_read("system"):
            session.send(
                encode_message(
                    [
                        ("Event", "FullyBooted"),
                        ("Privilege", "system,all"),
                        ("Uptime", "1"),
                        ("LastReload", "1"),
                        ("Status", "Fully Booted"),
                    ]
                )
            )

    def _core_show_channels(self, session: _Session, aid: Fields) -> None:
        session.send(
            encode_message(
                [
                    ("Response", "Success"),
                    *aid,
                    ("EventList", "start"),
                    ("Message", "Channels will follow"),
                ]
            )
        )
        now = self.pbx.clock.now()
        channels = list(self.pbx.channels.values())
        for chan in channels:
            session.send(
                encode_message(
                    [
                        ("Event", "CoreShowChannel"),
                        *aid,
                        *chan.snapshot(),
                        ("Application", chan.application),
                        ("ApplicationData", chan.app_data),
                        ("Duration", _duration(now - chan.created_at)),
                        ("BridgeId", chan.bridge_id),  # main/manager.c: last, empty if none
                    ]
                )
            )
        session.send(
            encode_message(
                [
                    ("Event", "CoreShowChannelsComplete"),
                    *aid,
                    ("EventList", "Complete"),
                    ("ListItems", str(len(channels))),
                ]
            )
        )

    def _queue_pause(self, session: _Session, action: dict[str, str], aid: Fields) -> None:
        """app_queue's QueuePause: `Interface` (required), `Paused`, optional `Queue` and
        `Reason`; needs the `agent` write class. Emits QueueMemberPause per queue changed."""
        user = session.user
        if user is None or not user.may_write("agent"):
            session.send(
                encode_message([("Response", "Error"), *aid, ("Message", "Permission denied")])
            )
            return
        interface = action.get("interface", "")
        paused_text = action.get("paused", "")
        if not interface or not paused_text:
            message = "Need 'Interface' and 'Paused' parameters."
            session.send(encode_message([("Response", "Error"), *aid, ("Message", message)]))
            return
        cfg = self.pbx.config
        local = cfg.technology == "Local"
        only = action.get("queue", "")
        changed = []
        for queue in cfg.queues:
            if only and queue.name != only:
                continue
            for ext in queue.members:
                iface = f"Local/{ext}@phones/n" if local else f"PJSIP/{ext}"
                if iface.lower() == interface.lower():
                    changed.append((queue, ext, iface))
        if not changed:
            message = "Interface not found"
            session.send(encode_message([("Response", "Error"), *aid, ("Message", message)]))
            return
        paused = paused_text.strip().lower() in {"1", "true", "yes", "on"}
        reason = action.get("reason", "") if paused else ""
        for queue, ext, iface in changed:
            self.pbx.pause(ext, paused, reason)
            self.pbx.emit(
                [
                    ("Event", "QueueMemberPause"),
                    ("Privilege", "agent,all"),
                    ("Queue", queue.name),
                    ("MemberName", cfg.agent(ext).name),
                    ("Interface", iface),
                    ("StateInterface", iface),
                    ("Paused", "1" if paused else "0"),
                    ("PausedReason", reason),
                ]
            )
        message = "Interface paused successfully" if paused else "Interface unpaused successfully"
        session.send(encode_message([("Response", "Success"), *aid, ("Message", message)]))

    def _queue_status(self, session: _Session, aid: Fields, only: str) -> None:
        session.send(
            encode_message(
                [
                    ("Response", "Success"),
                    *aid,
                    ("EventList", "start"),
                    ("Message", "Queue status will follow"),
                ]
            )
        )
        cfg, pbx = self.pbx.config, self.pbx
        now = pbx.clock.now()
        items = 0
        local = cfg.technology == "Local"
        for queue in cfg.queues:
            if only and queue.name != only:
                continue
            entries = pbx.queue_entries.get(queue.name, [])
            messages: list[Fields] = [
                [
                    ("Event", "QueueParams"),
                    ("Queue", queue.name),
                    ("Max", "0"),
                    ("Strategy", queue.strategy),
                    ("Calls", str(len(entries))),
                    ("Holdtime", "0"),
                    ("TalkTime", "0"),
                    ("Completed", "0"),
                    ("Abandoned", "0"),
                    ("ServiceLevel", "0"),
                    ("ServicelevelPerf", "0.0"),
                    ("ServicelevelPerf2", "0.0"),
                    ("Weight", "0"),
                    *aid,
                ]
            ]
            for ext in queue.members:
                iface = f"Local/{ext}@phones/n" if local else f"PJSIP/{ext}"
                # A real Asterisk 22 (restart/queuestatus-*.ami.log): a ringing member is
                # Status 2 (in use) but InCall 0; InCall 1 once connected.
                in_use, in_call = ext in pbx.busy, ext in pbx.talking
                messages.append(
                    [
                        ("Event", "QueueMember"),
                        ("Queue", queue.name),
                        ("Name", cfg.agent(ext).name),
                        ("Location", iface),
                        ("StateInterface", iface),
                        ("Membership", "static"),
                        ("Penalty", "0"),
                        ("CallsTaken", "0"),
                        ("LastCall", "0"),
                        ("LastPause", "0"),
                        ("LoginTime", str(int(now))),
                        ("InCall", "1" if in_call else "0"),
                        ("Status", "2" if in_use else "1"),
                        ("Paused", "1" if ext in pbx.paused else "0"),
                        ("PausedReason", pbx.paused.get(ext, "")),
                        ("Wrapuptime", "0"),
                        *aid,
                    ]
                )
            for position, chan in enumerate(entries, 1):
                messages.append(
                    [
                        ("Event", "QueueEntry"),
                        ("Queue", queue.name),
                        ("Position", str(position)),
                        ("Channel", chan.name),
                        ("Uniqueid", chan.uniqueid),
                        ("CallerIDNum", chan.cid_num),
                        ("CallerIDName", chan.cid_name),
                        ("ConnectedLineNum", chan.connected_num),
                        ("ConnectedLineName", chan.connected_name),
                        ("Wait", str(int(now - chan.created_at))),
                        ("Priority", "0"),
                        *aid,
                    ]
                )
            for message in messages:
                session.send(encode_message(message))
            items += len(messages)
        session.send(
            encode_message(
                [
                    ("Event", "QueueStatusComplete"),
                    *aid,
                    ("EventList", "Complete"),
                    ("ListItems", str(items)),
                ]
            )
        )
